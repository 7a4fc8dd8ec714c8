"""One handler for every command: any error ends as one line on stderr.

Exit status 1 for an error, 2 for a mistake in the command line or the configuration
(a usage error), 130 for Ctrl-C. The traceback is printed (above the line) only with
``--verbose``. Commands refuse what they expect with ``common.fail``; everything else
that escapes a command lands here and is worded by the first entry of ``_WORDS`` that
matches its type (modules register their own domain errors with ``words_for``).

An error type of a library the command may never load (SQLAlchemy, Alembic) is named
by its dotted path, so that registering its words does not import the library
(``digestmail --help`` must not); the path is matched against the error's classes.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import typer
from typer.core import TyperGroup

from digestmail.cli import common
from digestmail.cli.common import visible

E = TypeVar("E", bound=BaseException)
Say = Callable[[E], tuple[str, int]]

# Set by the root callback before anything else runs; read when an error is reported.
verbose = False

_WORDS: list[tuple[type[BaseException] | str, Callable[[Any], tuple[str, int]]]] = []


@overload
def words_for(kind: type[E]) -> Callable[[Say[E]], Say[E]]: ...
@overload
def words_for(kind: str) -> Callable[[Say[Any]], Say[Any]]: ...
def words_for(kind: type[E] | str) -> Callable[[Say[Any]], Say[Any]]:
    """Register how an error of ``kind`` is told (the line, and the exit status).

    ``kind`` is the class, or its dotted path (``"sqlalchemy.exc.DBAPIError"``) when
    importing it here would load a library the command may not need.
    """

    def register(say: Say[Any]) -> Say[Any]:
        _WORDS.append((kind, say))
        return say

    return register


def _is(exc: BaseException, kind: type[BaseException] | str) -> bool:
    if isinstance(kind, str):
        return any(f"{c.__module__}.{c.__qualname__}" == kind for c in type(exc).__mro__)
    return isinstance(exc, kind)


def describe(exc: BaseException) -> tuple[str, int]:
    """The one line for ``exc``, and the exit status."""
    for kind, say in _WORDS:
        if _is(exc, kind):
            return say(exc)
    return (
        f"Unexpected error: {type(exc).__name__}: {exc} (run the command again with "
        "--verbose to see where it happened).",
        1,
    )


def _database() -> str:
    """Where DIGESTMAIL_DATABASE_URL points, without its password."""
    try:
        from sqlalchemy.engine import make_url

        from digestmail import config

        return make_url(config.get_settings().database_url).render_as_string(hide_password=True)
    except Exception:  # the settings themselves may be what is wrong
        return "DIGESTMAIL_DATABASE_URL"


@words_for("pydantic_core._pydantic_core.ValidationError")
def _configuration(exc: Any) -> tuple[str, int]:
    from digestmail import config

    if exc.title != "Settings":
        return describe(Exception(str(exc)))
    return "The configuration is not valid: " + "; ".join(config.problems(exc)), 2


@words_for("digestmail.config.SettingsError")
def _light_configuration(exc: Any) -> tuple[str, int]:
    # The light settings refused (``config.get_light_settings``): said as above.
    return "The configuration is not valid: " + "; ".join(exc.problems), 2


@words_for("digestmail.migrate.DatabaseNotReady")
def _not_ready(exc: Any) -> tuple[str, int]:
    where = f"The database DIGESTMAIL_DATABASE_URL names ({_database()})"
    if exc.current is None:
        return f"{where} has no tables yet: run `digestmail init` first.", 1
    if exc.known:
        return (
            f"{where} has schema {exc.current}; this version needs {exc.head}: run "
            "`digestmail init` to upgrade it.",
            1,
        )
    return (
        f"{where} has schema {exc.current}, which this version of digestmail does not know "
        "(a newer version upgraded it): run that version instead.",
        1,
    )


@words_for("sqlalchemy.exc.DBAPIError")
def _database_failed(exc: Any) -> tuple[str, int]:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return (
        f"Cannot use the database DIGESTMAIL_DATABASE_URL names ({_database()}): {reason}",
        1,
    )


@words_for("sqlalchemy.exc.SQLAlchemyError")
def _database_other(exc: Any) -> tuple[str, int]:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"Database error ({_database()}): {first}", 1


@words_for(OSError)
def _system(exc: OSError) -> tuple[str, int]:
    what = f"{exc.filename}: " if exc.filename else ""
    return f"{what}{exc.strerror or exc}", 1


class DigestmailGroup(TyperGroup):
    """The root command group: every error of every command ends here as one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # a command's own exit, or a usage error: ``main`` reports those
        except Exception as exc:
            if verbose:
                traceback.print_exc(file=sys.stderr)
            message, code = describe(exc)
            common.err_console.print(message)
            raise typer.Exit(code) from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def run(standalone: bool) -> Any:
            return super(DigestmailGroup, self).main(
                args, prog_name, complete_var, standalone, windows_expand_args, **extra
            )

        if not standalone_mode:
            return run(False)
        try:
            code = run(False)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                sys.exit(2)  # the help has been shown
            # A usage error: one line naming the command, and where its help is.
            ctx = getattr(exc, "ctx", None)
            path = ctx.command_path if ctx is not None else ""
            hint = f" (see `{path} --help`)" if path else ""
            common.err_console.print(
                f"{path + ': ' if path else ''}{visible(exc.format_message())}{hint}"
            )
            sys.exit(exc.exit_code)
        except typer.Abort:
            common.err_console.print("Aborted.")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
