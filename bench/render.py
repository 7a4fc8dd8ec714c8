"""How long one issue render and one recipient's substitution take.

Run: ``.venv/bin/python bench/render.py [--repeat N]``. The render is paid once per
issue (Jinja2 + MJML compile + premailer inlining); the substitution once per
recipient, which is why the two figures differ by three orders of magnitude.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from digestmail.config import Settings
from digestmail.content.source import load_issue
from digestmail.emailhtml import compile_mjml, inline_css
from digestmail.placeholders import Template
from digestmail.render import recipient_values, render_issue, render_mjml, webview_url

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vol-4.1.md"


def median_seconds(fn: Callable[[], object], repeat: int, *, inner: int = 1) -> float:
    """Median over ``repeat`` runs of ``inner`` calls each, per call."""
    fn()  # warm caches (templates, CSS parser)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds * 1e6:8.2f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="runs per figure (default 50)")
    args = parser.parse_args()

    settings = Settings(
        base_url="https://digest.example.org", secret_key="bench-only-secret-" + "x" * 32
    )
    issue = load_issue(EXAMPLE)
    rendered = render_issue(issue, settings)
    mjml = render_mjml(issue, settings)
    compiled = compile_mjml(mjml)

    html_template = Template.parse(rendered.html)
    text_template = Template.parse(rendered.text)
    values = recipient_values(
        settings,
        name="Ann Smith",
        email="ann@example.org",
        unsubscribe_url="https://digest.example.org/unsubscribe/eyJzIjoxMjM0NX0.Zx1y2w.abcdefghij",
        webview_url=webview_url(settings, issue.slug),
    )

    n = args.repeat
    figures = [
        ("full render (Jinja + MJML + inlining + text)", median_seconds(
            lambda: render_issue(issue, settings), n)),
        ("  Jinja2 fill of the MJML template", median_seconds(
            lambda: render_mjml(issue, settings), n, inner=10)),
        ("  MJML compile (mjml-python)", median_seconds(lambda: compile_mjml(mjml), n, inner=10)),
        ("  CSS inlining (premailer)", median_seconds(lambda: inline_css(compiled), n)),
        ("parse placeholders, HTML part (once per issue)", median_seconds(
            lambda: Template.parse(rendered.html), n, inner=10)),
        ("substitute one recipient, HTML part", median_seconds(
            lambda: html_template.substitute(values), n, inner=1000)),
        ("substitute one recipient, HTML + text parts", median_seconds(
            lambda: (html_template.substitute(values), text_template.substitute(values)),
            n, inner=1000)),
    ]  # fmt: skip

    print(f"issue {issue.slug}: HTML {rendered.html_bytes / 1000:.1f} KB, "
          f"text {len(rendered.text.encode()) / 1000:.1f} KB; median of {n} runs")  # fmt: skip
    for label, seconds in figures:
        print(f"  {label:<50} {fmt(seconds)}")
    per_recipient = figures[-1][1]
    print(f"  100,000 recipients' substitutions: {per_recipient * 100_000:.2f} s "
          f"(rendering per recipient instead: {figures[0][1] * 100_000 / 60:.0f} min)")  # fmt: skip


if __name__ == "__main__":
    main()
