"""``digestmail issue …``: import, check, render, store and list issues.

``import``, ``check`` and ``render`` work on files only (no database); ``add`` and
``list`` live in ``cli/issue_store.py`` and register themselves on this group.
Problems are printed as ``FILE:LINE: severity: message`` with plain ``typer.echo``,
never through rich, whose markup would swallow the ``[text](url)`` in messages; what
they quote from the file has its control characters written out (``visible``).
"""

from __future__ import annotations

import sys
from datetime import date
from enum import StrEnum
from pathlib import Path

import typer

from digestmail.cli.common import light_settings, visible
from digestmail.content.source import ParseResult, Problem, parse_issue
from digestmail.media import MediaStore

app = typer.Typer(help="Work with issues: import, check, render, add, list.", no_args_is_help=True)


class OutputFormat(StrEnum):
    html = "html"
    text = "text"
    mjml = "mjml"


def _echo(text: str, err: bool = False) -> None:
    typer.echo(visible(text), err=err)


def _read(path: Path) -> str:
    """The file's text, or a clean exit naming what is wrong with it."""
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        _echo(f"{path}: error: cannot read the file: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        _echo(f"{path}:{line}: error: the file is not UTF-8 text; save it as UTF-8", err=True)
        raise typer.Exit(1) from exc


def _write(text: str, out: Path | None, *, force: bool = True) -> None:
    if out is None or str(out) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if out.exists() and not force:
        _echo(f"{out}: error: the file exists; use --force to replace it", err=True)
        raise typer.Exit(1)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        _echo(f"{out}: error: cannot write the file: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc


def _report(name: str, problems: list[Problem], *, err: bool = False) -> None:
    for problem in problems:
        _echo(problem.format(name), err=err)


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date written YYYY-MM-DD") from exc


@app.command("import")
def import_(
    src: Path = typer.Argument(..., help="Archive text of a past issue ('-' reads stdin)."),
    out: Path | None = typer.Option(
        None, "--output", "-o", help="Write the issue source here (default: stdout)."
    ),
    issue_date: str | None = typer.Option(
        None, "--date", metavar="YYYY-MM-DD", help="The issue's date, if the archive has none."
    ),
    publication: str | None = typer.Option(
        None, "--publication", help="The publication's name, if the archive has none."
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Convert a past issue copied from the archive web page into an issue source file.

    Notes about what was dropped or is missing go to stderr. Exits 1 when the text
    cannot be read as an issue, or when the result still has errors (it is written
    anyway, so that you can fix it by hand).
    """
    from digestmail.content.importer import ArchiveImportError, import_archive

    when = _parse_date(issue_date)
    text = _read(src)
    try:
        result = import_archive(text, date=when, publication=publication)
    except ArchiveImportError as exc:
        hint = f"; give it with --{exc.missing}" if exc.missing else ""
        _echo(f"{src}: error: {exc}{hint}", err=True)
        raise typer.Exit(1) from exc
    _write(result.source, out, force=force)
    for note in result.notes:
        _echo(f"{src}: note: {note}", err=True)
    target = str(out) if out is not None and str(out) != "-" else "<stdout>"
    _report(target, result.check.problems, err=True)
    if result.check.errors:
        _echo(f"{target}: the imported issue has errors; fix them before use", err=True)
        raise typer.Exit(1)


@app.command()
@light_settings  # the media folder is all it reads: it starts without pydantic
def check(file: Path = typer.Argument(..., help="The issue source file (.md).")) -> None:
    """Check an issue source file: exit 0 if it is usable (warnings printed), else 1."""
    from digestmail.config import get_light_settings

    media = MediaStore.of(get_light_settings())
    result = parse_issue(_read(file), path=str(file), media=media)
    _report(str(file), result.problems)
    errors, warnings = len(result.errors), len(result.warnings)
    summary = f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning" + (
        "s" if warnings != 1 else ""
    )
    if not result.ok:
        _echo(f"{file}: not usable ({summary})", err=True)
        raise typer.Exit(1)
    _echo(f"{file}: ok ({summary})", err=True)


@app.command()
def render(
    file: Path = typer.Argument(..., help="The issue source file (.md)."),
    fmt: OutputFormat = typer.Option(
        OutputFormat.html, "--format", "-f", help="What to produce: html, text or mjml."
    ),
    out: Path | None = typer.Option(None, "--output", "-o", help="Write here (default: stdout)."),
) -> None:
    """Render an issue as its email would look (placeholders left for each recipient)."""
    from digestmail.config import get_settings
    from digestmail.render import RenderError, render_issue

    settings = get_settings()
    result: ParseResult = parse_issue(_read(file), path=str(file), media=MediaStore.of(settings))
    if not result.ok or result.issue is None:
        _report(str(file), result.errors, err=True)
        _echo(f"{file}: not rendered: fix the errors above first", err=True)
        raise typer.Exit(1)
    _report(str(file), result.warnings, err=True)
    try:
        rendered = render_issue(result.issue, settings)
    except RenderError as exc:
        _echo(f"{file}: error: cannot render: {exc}", err=True)
        raise typer.Exit(1) from exc
    _write(getattr(rendered, fmt.value), out)
    if out is not None and str(out) != "-":
        _echo(f"{file}: wrote {fmt.value} to {out}", err=True)
