"""Layers point down: nothing below ``cli/`` names a command in what it says.

Errors and stored reasons carry data (ids, statuses, reasons); the CLI and the admin
turn them into words and hints. A sentence naming `digestmail …` or a flag in the
campaign code would be wrong the day the admin shows it, and was once searched for by
the CLI. Docstrings may name commands (they explain, to programmers, who calls what).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "digestmail"
COMMAND = re.compile(r"\bdigestmail (?:[a-z]+)\b|(?<![\w-])--[a-z][a-z-]+")


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_nothing_below_the_cli_names_a_command_or_a_flag() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("cli", "migrations"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and COMMAND.search(node.value)
            ):
                found.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert found == []
