from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from digestmail.cli import app
from digestmail.config import reset_settings_cache

runner = CliRunner()


def test_init_creates_then_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fresh.db"
    monkeypatch.setenv("DIGESTMAIL_DATABASE_URL", f"sqlite:///{path}")
    reset_settings_cache()
    first = runner.invoke(app, ["init"])
    assert first.exit_code == 0, first.output
    assert "Created the database" in first.output
    engine = sa.create_engine(f"sqlite:///{path}")
    assert "subscribers" in sa.inspect(engine).get_table_names()
    engine.dispose()
    second = runner.invoke(app, ["init"])
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output


def test_init_on_an_existing_database_of_either_backend(db_url: str) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_serve_refuses_other_machines_with_the_public_development_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DIGESTMAIL_SECRET_KEY")
    reset_settings_cache()
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "DIGESTMAIL_SECRET_KEY" in result.output
