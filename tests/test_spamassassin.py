"""The issue email and the confirmation email, scored by SpamAssassin as a receiver would.

Both messages are built exactly as they are sent (through the outbox transport, with a
production base URL) and run through Debian's ``spamassassin -L -t`` (its shipped rules,
no network tests). Any rule that adds points fails the test and is named, so a template
change that looks like spam to filters is caught before it reaches inboxes.
"""

from __future__ import annotations

import re
import subprocess
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from digestmail import confirmation
from digestmail.campaigns import create_campaign, run_campaign
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import add_issue
from tests.campaign_helpers import add_subscribers

# A line of SpamAssassin's report: " 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color ..."
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z][A-Z0-9_]+)\s", re.MULTILINE)


def _score(
    spamassassin: Path, messages: dict[str, bytes], work: Path
) -> dict[str, dict[str, float]]:
    """Rule name -> points for each message; the runs go in parallel (each takes seconds)."""
    runs = {}
    for name, data in messages.items():
        (work / f"{name}.eml").write_bytes(data)
        with (work / f"{name}.eml").open("rb") as stdin:
            runs[name] = subprocess.Popen(
                [str(spamassassin), "-L", "-t"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own home: SpamAssassin writes a preferences file there on first run.
                env={"HOME": str(work), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
    scores: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        out, err = run.communicate(timeout=300)
        report = out.decode("utf-8", "replace").partition("Content analysis details:")[2]
        assert report, f"no SpamAssassin report for {name}: {err.decode(errors='replace')}"
        scores[name] = {rule: float(points) for points, rule in _RULE.findall(report)}
    return scores


def _html_part(message: bytes) -> str:
    parsed = message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def test_issue_and_confirmation_emails_score_nothing(
    sqlite_url: str,
    example_issue: Path,
    spamassassin: Path,
    tmp_path: Path,
) -> None:
    settings = Settings(base_url="https://digest.example.org")
    db = Database(sqlite_url)
    add_subscribers(db, 1)
    add_subscribers(db, 1, status="pending", prefix="new", start=1)
    slug = add_issue(db, settings, example_issue, ready=True).slug
    run_campaign(db, settings, create_campaign(db, settings, slug))
    confirmation.send(settings, confirmation.Kind.SUBSCRIBE, [(2, "new1@example.com")])
    db.dispose()

    outbox = Path(settings.outbox_dir)
    [issue_mail] = outbox.glob("user0@*.eml")
    [confirm_mail] = outbox.glob("new1@*.eml")
    messages = {"issue": issue_mail.read_bytes(), "confirmation": confirm_mail.read_bytes()}
    # The test can fail: the same issue with its preheader as MJML's <mj-preview> writes
    # it (white text first in the body), which SpamAssassin scored before.
    hidden = re.sub(
        r"(<body\b[^>]*>)",
        r'\1<div style="display:none;font-size:1px;color:#ffffff;line-height:1px;'
        r'max-height:0px;max-width:0px;opacity:0;overflow:hidden;">Defense ministers set '
        r"2025 priorities, chip investment grows, and coast guards train together.</div>",
        _html_part(messages["issue"]),
        count=1,
    )
    control = message_from_bytes(messages["issue"], policy=policy.default)
    assert isinstance(control, EmailMessage)
    html_part = control.get_body(preferencelist=("html",))
    assert html_part is not None
    html_part.set_content(hidden, subtype="html")
    messages["control"] = control.as_bytes()

    scores = _score(spamassassin, messages, tmp_path)
    for name in ("issue", "confirmation"):
        assert "HTML_MESSAGE" in scores[name], f"SpamAssassin did not read the HTML of {name}"
        adding = {rule: pts for rule, pts in scores[name].items() if pts > 0}
        assert adding == {}, f"SpamAssassin rules that add points to the {name} email: {adding}"
    assert scores["control"].get("HTML_FONT_LOW_CONTRAST", 0) > 0, scores["control"]
