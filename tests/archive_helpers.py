"""Shared by the archive, feed and print tests: issues published the way staff do it."""

from __future__ import annotations

from pathlib import Path

from digestmail.campaigns import active_audience_size, create_campaign, run_campaign
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import add_issue
from tests.campaign_helpers import add_subscribers


def publish(database: Database, settings: Settings, source: Path) -> str:
    """Add the issue and send it to whoever is active (one reader, if nobody is: an issue
    is never sent to nobody); returns its slug."""
    slug = add_issue(database, settings, source, ready=True).slug
    if active_audience_size(database) == 0:
        add_subscribers(database, 1, prefix="archive-reader")
    run_campaign(database, settings, create_campaign(database, settings, slug))
    return slug
