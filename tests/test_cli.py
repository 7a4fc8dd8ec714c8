from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _one_line_error(result: Any) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return str(lines[0])


def test_a_command_on_a_database_not_yet_created_says_to_run_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "never-created.db"
    monkeypatch.setenv("DIGESTMAIL_DATABASE_URL", f"sqlite:///{path}")
    reset_settings_cache()
    for args in (["campaign", "list"], ["subscribers", "list"], ["issue", "list"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        line = _one_line_error(result)
        assert "DIGESTMAIL_DATABASE_URL" in line and "run `digestmail init` first" in line
    assert not path.exists()  # asking created nothing


def test_a_database_on_an_older_schema_says_to_run_init_and_init_upgrades_it(
    db_url: str,
) -> None:
    from alembic import command

    from digestmail.migrate import alembic_config, head_revision

    command.downgrade(alembic_config(db_url), "0001")
    result = runner.invoke(app, ["campaign", "list"])
    assert result.exit_code == 1
    line = _one_line_error(result)
    assert f"has schema 0001; this version needs {head_revision()}" in line
    assert "`digestmail init` to upgrade it" in line
    upgraded = runner.invoke(app, ["init"])
    assert upgraded.exit_code == 0 and "Upgraded the database from schema 0001" in upgraded.output
    assert runner.invoke(app, ["campaign", "list"]).exit_code == 0


def test_an_unreachable_database_is_one_line_naming_the_variable_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGESTMAIL_DATABASE_URL", "postgresql://digest:hunter2@127.0.0.1:1/x")
    reset_settings_cache()
    result = runner.invoke(app, ["subscribers", "list"])
    assert result.exit_code == 1
    line = _one_line_error(result)
    assert line.startswith("Cannot use the database DIGESTMAIL_DATABASE_URL names")
    assert "127.0.0.1:1" in line and "hunter2" not in line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIGESTMAIL_DATABASE_URL", "garbage"),
        ("DIGESTMAIL_DATABASE_URL", ""),
        ("DIGESTMAIL_DATABASE_URL", "oracle://x/y"),
        ("DIGESTMAIL_LOG_LEVEL", "LOUD"),
        ("DIGESTMAIL_FROM", "garbage"),
    ],
)
def test_a_bad_setting_stops_every_command_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    reset_settings_cache()
    for args in (["campaign", "list"], ["serve"], ["init"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        line = _one_line_error(result)
        assert line.startswith("The configuration is not valid: ") and f"{name}: " in line


def test_an_id_no_campaign_can_have_is_not_found(db_url: str) -> None:
    for action in ("cancel", "pause", "resume", "status"):
        result = runner.invoke(app, ["campaign", action, "99999999999999999999"])
        assert result.exit_code == 1
        assert _one_line_error(result) == (
            "There is no campaign 99999999999999999999; `digestmail campaign list` shows them."
        )


def test_a_usage_error_is_one_line_with_status_2() -> None:
    result = runner.invoke(app, ["campaign", "cancel", "twelve"], prog_name="digestmail")
    assert result.exit_code == 2
    line = _one_line_error(result)
    assert line.startswith("digestmail campaign cancel: Invalid value for 'campaign_id'")
    assert line.endswith("(see `digestmail campaign cancel --help`)")
