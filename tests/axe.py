"""axe-core accessibility checks for the browser tests.

axe-core comes from npm at the exact version in ``tests/js/package-lock.json``
(``npm ci`` in ``tests/js``, run by ``make test``), so every machine checks against
the same rules. ``violations(page)`` runs it in a page already loaded in Chromium
and returns what it found; a test asserts the list is empty and, when it is not,
``describe`` says which rule, where, and how to fix it.

The script is evaluated through the DevTools protocol rather than added as a
``<script>`` tag, so it also runs on pages whose Content-Security-Policy forbids
inline scripts (the admin pages).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest
from playwright.sync_api import Page

AXE_JS = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"

# The rule sets we hold pages to: WCAG 2.1 A and AA plus axe's best practices
# (landmarks, one h1, ...), which is what readers of assistive technology notice.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str | None
    help: str
    help_url: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        where = ", ".join(self.targets[:5]) + (" …" if len(self.targets) > 5 else "")
        return f"{self.rule} ({self.impact}): {self.help} at {where} — {self.help_url}"


@lru_cache(maxsize=1)
def axe_source() -> str:
    """axe-core's script; fails in CI and skips elsewhere when ``npm ci`` has not run."""
    if not AXE_JS.is_file():
        message = f"axe-core is not installed: run 'npm ci' in {AXE_JS.parents[2]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


def violations(page: Page, *, exclude: tuple[str, ...] = ()) -> list[Violation]:
    """Run axe-core over the whole page as loaded; ``exclude`` lists CSS selectors to skip."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    raw = page.evaluate(
        """async ([tags, exclude]) => {
            const context = exclude.length
                ? {include: [document], exclude: exclude.map(s => [s])}
                : document;
            const result = await window.axe.run(context, {
                runOnly: {type: 'tag', values: tags},
                resultTypes: ['violations'],
            });
            return result.violations.map(v => ({
                rule: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                targets: v.nodes.map(n => n.target.join(' ')),
            }));
        }""",
        [list(TAGS), list(exclude)],
    )
    return [
        Violation(v["rule"], v["impact"], v["help"], v["helpUrl"], tuple(v["targets"])) for v in raw
    ]


def describe(found: list[Violation]) -> str:
    """The violations one per line, for an assertion message."""
    return "\n".join(str(v) for v in found)
