"""The command starts at once: ``--help`` and ``issue check`` load no heavy library, and
``send`` only what sending needs.

Each case runs the real command in a fresh interpreter and reads ``sys.modules`` at the
end, so a module that imports the database, the web app, the renderer or a mail client
at its top (instead of inside the command that needs it) fails here, whoever adds it.
How long they take is ``bench/cli.py``'s business (``bench/send.py``'s for ``send``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from digestmail.cli import COMMANDS, app
from digestmail.config import Settings
from digestmail.db import Database
from tests.campaign_helpers import add_subscribers, outbox_counts, store_issue

EXAMPLE = Path(__file__).parent.parent / "examples" / "vol-4.1.md"
SAMPLE = sorted((Path(__file__).parent / "fixtures" / "samples").glob("*.txt"))[0]
HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "premailer", "mjml", "sendgrid")
HEAVY += ("jinja2", "weasyprint", "email_validator", "pydantic_settings", "limits")

_PROBE = """
import gc, json, sys
sys.argv = ["digestmail", *sys.argv[1:]]
from digestmail.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
loaded = sorted({*sys.modules, *(name.split(".")[0] for name in sys.modules)})
report = {"code": code, "loaded": loaded, "collecting": gc.isenabled()}
print(json.dumps(report), file=sys.stderr)
"""


def _probe(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The real command run in a fresh interpreter: its exit code, the modules it
    loaded, and whether the garbage collector was on at the end."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=120,
    )
    report: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), done.stderr
    return report


def _loaded(*args: str, env: dict[str, str] | None = None) -> set[str]:
    return set(_probe(*args, env=env)["loaded"])


def test_help_loads_no_command_module_and_no_heavy_library() -> None:
    loaded = _loaded("--help")
    assert not loaded & set(HEAVY)
    assert "pydantic" not in loaded  # not even the settings


def test_issue_check_loads_only_what_checking_a_file_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(EXAMPLE.with_name("vol-4.1-hero.jpg"), media)
    # As in production: every setting given, database and addresses included.
    env = {
        **os.environ,
        "DIGESTMAIL_MEDIA_DIR": str(media),
        "DIGESTMAIL_DATABASE_URL": "postgresql://digest:pw@db.internal/digest",
        "DIGESTMAIL_FROM": "Digest <digest@example.org>",
        "DIGESTMAIL_RATE_LIMIT_STORAGE": "memory://",
    }
    loaded = _loaded("issue", "check", str(EXAMPLE), env=env)
    assert not loaded & set(HEAVY)
    # Nor pydantic: it reads the light settings only, not the model of every setting
    # (``config_model``), and its arguments are parsed without it (typer below 0.29).
    assert not loaded & {"pydantic", "pydantic_core", "digestmail.config_model"}
    assert {"yaml", "markdown_it"} <= loaded  # it does read the file


def test_send_loads_no_web_app_renderer_nor_alembic(sqlite_url: str, tmp_path: Path) -> None:
    """A send reads the stored issue (rendered when it was added) and the list: the web
    app, the renderers, address checking and Alembic (the schema is current) belong to
    other commands, and would only delay the first message."""
    db = Database(sqlite_url)
    add_subscribers(db, 3)
    slug = store_issue(db, Settings())
    db.dispose()
    report = _probe("send", slug, "--yes")
    loaded = set(report["loaded"])
    assert not loaded & {
        *("alembic", "fastapi", "starlette", "limits", "digestmail.web"),
        *("premailer", "mjml", "jinja2", "weasyprint", "digestmail.emailhtml"),
        "email_validator",
    }
    assert len(outbox_counts(tmp_path / "outbox")) == 3  # it did send
    # Off while the command loaded (``cli.main``), the collector is on again for its
    # work, as it must be for a command that runs for days (``serve``).
    assert report["collecting"]


def test_a_command_that_reads_every_setting_loads_the_model(tmp_path: Path) -> None:
    """The light path is the marked command's only: the others read every setting."""
    env = {**os.environ, "DIGESTMAIL_MEDIA_DIR": str(tmp_path)}
    loaded = _loaded("issue", "import", str(SAMPLE), "-o", str(tmp_path / "out.md"), env=env)
    assert "digestmail.config_model" in loaded


def test_each_registered_command_says_in_the_list_what_its_own_help_says() -> None:
    """The registry's line is what ``--help`` shows without loading the module: it must
    not drift from the command's own help."""
    for name, entry in COMMANDS.items():
        command = entry.load(name)
        own = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
        assert own == entry.help, name
        assert command.name == name


def test_help_lists_every_registered_command() -> None:
    from typer.testing import CliRunner

    out = CliRunner().invoke(app, ["--help"]).output
    for name in (*COMMANDS, "init"):
        assert f"  {name} " in out
