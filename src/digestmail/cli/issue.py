"""``digestmail issue …``: import, check, render, store and list issues."""

from __future__ import annotations

import typer

app = typer.Typer(help="Work with issues: import, check, render, add, list.", no_args_is_help=True)
