"""``digestmail issue import|check|render``: output, files and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digestmail.cli import app
from tests.conftest import EXAMPLE

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "tests" / "fixtures" / "samples").glob("*.txt"))
runner = CliRunner()

BROKEN = """\
---
publication: Test Digest
volume: "1.1"
---

## Headlines

- One
- Two

## Details

- Only [one](#) item.
"""


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_imports_checks_and_renders(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "issue.md"
    imported = runner.invoke(app, ["issue", "import", str(sample), "-o", str(out)])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout == ""  # the source went to the file, the notes to stderr
    assert "note:" in imported.stderr
    checked = runner.invoke(app, ["issue", "check", str(out)])
    assert checked.exit_code == 0, checked.output
    assert ": error:" not in checked.output
    assert f"{out}:1: warning: no 'hero:' image" in checked.stdout
    html = runner.invoke(app, ["issue", "render", str(out), "--format", "html"])
    assert html.exit_code == 0, html.output
    first_headline = out.read_text(encoding="utf-8").split("## Headlines\n\n- ")[1].split("\n")[0]
    assert html.stdout.lstrip().lower().startswith("<!doctype html")
    assert first_headline.split("“")[0].replace("&", "&amp;") in html.stdout
    text = runner.invoke(app, ["issue", "render", str(out), "--format", "text"])
    assert text.exit_code == 0 and first_headline in " ".join(text.stdout.split())


def test_import_to_stdout_with_date() -> None:
    result = runner.invoke(app, ["issue", "import", str(SAMPLES[1]), "--date", "2023-03-03"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("---\npublication: US-Japan Alliance Digest\n")
    assert "date: 2023-03-03\n" in result.stdout
    assert "no date in the archive" not in result.stderr


def test_import_without_a_publication_name_says_how_to_give_one(tmp_path: Path) -> None:
    """The importer names what is missing; the command line says which option gives it."""
    text = SAMPLES[0].read_text(encoding="utf-8")
    headless = tmp_path / "headless.txt"
    headless.write_text(text.replace("US-Japan Alliance Digest", "").replace("Digest", ""))
    result = runner.invoke(app, ["issue", "import", str(headless)])
    assert result.exit_code == 1
    assert "no publication name found" in result.stderr
    assert "give it with --publication" in result.stderr
    named = runner.invoke(app, ["issue", "import", str(headless), "--publication", "Named Digest"])
    assert named.exit_code == 0, named.output
    assert named.stdout.startswith("---\npublication: Named Digest\n")


def test_import_rejects_a_bad_date_option() -> None:
    result = runner.invoke(app, ["issue", "import", str(SAMPLES[0]), "--date", "13/10/2023"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_import_does_not_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "issue.md"
    out.write_text("staff edits\n", encoding="utf-8")
    refused = runner.invoke(app, ["issue", "import", str(SAMPLES[0]), "-o", str(out)])
    assert refused.exit_code == 1 and "--force" in refused.stderr
    assert out.read_text(encoding="utf-8") == "staff edits\n"
    forced = runner.invoke(app, ["issue", "import", str(SAMPLES[0]), "-o", str(out), "--force"])
    assert forced.exit_code == 0 and out.read_text(encoding="utf-8").startswith("---\n")


def test_import_of_a_malformed_archive_fails_clearly(tmp_path: Path) -> None:
    src = tmp_path / "page.txt"
    src.write_text("Policy Digest Vol 1.2\n\nNothing but a paragraph.\n", encoding="utf-8")
    result = runner.invoke(app, ["issue", "import", str(src), "-o", str(tmp_path / "x.md")])
    assert result.exit_code == 1
    assert f"{src}: error: no headlines found" in result.stderr
    assert not (tmp_path / "x.md").exists()


def test_import_of_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["issue", "import", str(tmp_path / "nope.txt")])
    assert result.exit_code == 1 and "cannot read the file" in result.stderr


def test_check_example_is_clean(example_issue: Path) -> None:
    result = runner.invoke(app, ["issue", "check", str(example_issue)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "ok (0 errors, 0 warnings)" in result.stderr


def test_check_prints_errors_with_lines_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.md"
    path.write_text(BROKEN, encoding="utf-8")
    result = runner.invoke(app, ["issue", "check", str(path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"{path}:1: warning: no 'date:' (write it as date: 2023-10-13); the issue shows no date",
        f"{path}:1: warning: no 'hero:' image: the issue goes out without a picture",
        f"{path}:11: error: '## Headlines' has 2 entries but '## Details' has 1: each headline "
        "needs its detail item, in the same order",
        f"{path}:13: error: link 'one' has no URL: write [one](https://…)",
        f"{path}:13: warning: no '## About' section (the closing 'about this digest' paragraph)",
    ]
    assert "not usable (2 errors, 3 warnings)" in result.stderr


def test_render_refuses_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.md"
    path.write_text(BROKEN, encoding="utf-8")
    out = tmp_path / "out.html"
    result = runner.invoke(app, ["issue", "render", str(path), "-o", str(out)])
    assert result.exit_code == 1
    assert f"{path}:13: error: link 'one' has no URL" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["html", "text", "mjml"])
def test_render_example_to_a_file(fmt: str, tmp_path: Path, example_issue: Path) -> None:
    out = tmp_path / f"issue.{fmt}"
    result = runner.invoke(
        app, ["issue", "render", str(example_issue), "--format", fmt, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    body = out.read_text(encoding="utf-8")
    assert "Defense ministers set alliance priorities for 2025" in body
    if fmt == "mjml":
        assert "<mjml" in body
    elif fmt == "text":
        assert "https://www.mod.go.jp/en/" in body and "<" not in body.split("\n")[0]
    else:
        assert 'href="https://www.mod.go.jp/en/"' in body


def test_real_command_exit_codes(tmp_path: Path, example_issue: Path) -> None:
    """The installed console script, as staff run it."""
    exe = Path(sys.executable).parent / "digestmail"
    broken = tmp_path / "broken.md"
    broken.write_text(BROKEN, encoding="utf-8")
    good = subprocess.run(
        [str(exe), "issue", "check", str(example_issue)],
        capture_output=True,
        text=True,
        check=False,
    )
    bad = subprocess.run(
        [str(exe), "issue", "check", str(broken)], capture_output=True, text=True, check=False
    )
    assert (good.returncode, bad.returncode) == (0, 1), good.stderr + bad.stderr
    assert f"{broken}:13: error:" in bad.stdout


def test_check_reads_the_settings_it_uses_as_every_command_does(example_issue: Path) -> None:
    """A bad log level stops ``issue check`` in the words it stops ``issue render``; a
    setting it does not use (the sender) is not read, so it does not stop it."""
    exe = str(Path(sys.executable).parent / "digestmail")

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, "issue", *args, str(example_issue)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        )

    check, render = (
        run("check", DIGESTMAIL_LOG_LEVEL="LOUD"),
        run("render", DIGESTMAIL_LOG_LEVEL="LOUD"),
    )
    assert (check.returncode, render.returncode) == (2, 2)
    assert check.stderr == render.stderr
    assert check.stderr.startswith("The configuration is not valid: DIGESTMAIL_LOG_LEVEL: ")
    check, render = (
        run("check", DIGESTMAIL_FROM="garbage"),
        run("render", DIGESTMAIL_FROM="garbage"),
    )
    assert check.returncode == 0 and "ok (0 errors, 0 warnings)" in check.stderr
    assert render.returncode == 2 and "DIGESTMAIL_FROM: 'garbage'" in render.stderr


def test_check_names_a_missing_picture_of_the_media_folder(tmp_path: Path) -> None:
    # The example issue, without `make run` having put its picture in the media folder.
    result = runner.invoke(app, ["issue", "check", str(EXAMPLE)])
    assert result.exit_code == 1
    [line] = [x for x in result.stdout.splitlines() if "error" in x]
    assert f"{EXAMPLE}:" in line and "hero url 'vol-4.1-hero.jpg' names a picture" in line
    assert str(tmp_path / "media" / "vol-4.1-hero.jpg") in line
