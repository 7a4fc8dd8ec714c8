"""``digestmail stats``: the last campaigns side by side, and the figures of one campaign
(also shown by ``campaign status``)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from digestmail import stats
from digestmail.cli.common import console, database, err_console

# What a complaint level says to staff, and what to do about it.
_LEVEL_WORDS = {
    stats.Level.WARNING: (
        "Warning: complaints passed 0.1% of delivered mail. Mailbox providers watch this "
        "figure; check that everyone on the list asked for the digest."
    ),
    stats.Level.ALARM: (
        "ALARM: complaints reached 0.3% of delivered mail, the rate at which Gmail and "
        "Yahoo start refusing or throttling a sender. Review how addresses came onto the "
        "list before the next send."
    ),
}


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%" if rate < 0.1 else f"{rate * 100:.0f}%"


def figure_lines(fig: stats.CampaignFigures) -> list[str]:
    """The figures of one campaign, a line each, for ``campaign status``."""
    rates = fig.rates
    basis = "of delivered" if fig.transport == "sendgrid" else "of sent"
    lines = [
        f"Delivered     {fig.delivered:>8}  {_pct(rates['delivered'])} of sent",
        f"Bounced       {fig.bounced:>8}  {_pct(rates['bounced'])} of sent",
        f"Complained    {fig.complained:>8}  {_pct(rates['complained'])} {basis}",
        f"Unique opens  {fig.opened:>8}  {_pct(rates['opened'])} {basis}",
        f"Unique clicks {fig.clicked:>8}  {_pct(rates['clicked'])} {basis}",
        f"Unsubscribed  {fig.unsubscribed:>8}  {_pct(rates['unsubscribed'])} {basis}",
    ]
    if fig.transport != "sendgrid":
        lines.append(
            f"({fig.transport}: nothing reports deliveries, opens or clicks; delivered means "
            "the receiving server accepted it)"
        )
    words = _LEVEL_WORDS.get(fig.complaint_level)
    if words:
        lines.append(words)
    return lines


def stats_command(
    last: int = typer.Option(10, "--last", min=1, max=1000, help="How many campaigns."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The last campaigns side by side: delivered, bounces, complaints, opens, clicks."""
    with database() as db:
        figures = stats.recent_figures(db, last)
    if as_json:
        typer.echo(json.dumps([f.to_json() for f in figures], indent=2))
        return
    if not figures:
        console.print("No campaigns have been sent yet.")
        return
    table = Table(
        "ID",
        "Issue",
        "Sent",
        "Deliv.",
        "Bounce",
        "Compl.",
        "Open",
        "Click",
        "Unsub",
        caption="Bounces are a share of sent mail, the rest of delivered mail; "
        "--json gives the counts.",
    )
    for f in figures:
        r = f.rates
        flag = {stats.Level.WARNING: "!", stats.Level.ALARM: "!!"}.get(f.complaint_level, "")
        table.add_row(
            str(f.campaign_id),
            f.issue_slug,
            str(f.sent),
            _pct(r["delivered"]),
            _pct(r["bounced"]),
            _pct(r["complained"]) + flag,
            _pct(r["opened"]),
            _pct(r["clicked"]),
            _pct(r["unsubscribed"]),
        )
    console.print(table)
    for f in figures:
        words = _LEVEL_WORDS.get(f.complaint_level)
        if words:
            err_console.print(f"Campaign {f.campaign_id} ({f.issue_slug}): {words}")
