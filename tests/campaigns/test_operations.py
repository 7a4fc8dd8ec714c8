"""What staff do to campaigns: create (one at a time per issue), pause, cancel, resume."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import update

from digestmail import campaigns
from digestmail.campaigns import run_campaign
from digestmail.campaigns.tables import C
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import CampaignStatus
from tests.campaign_helpers import add_subscribers, store_issue


def test_two_sends_racing_create_one_campaign(database: Database, small: Settings) -> None:
    add_subscribers(database, 1)
    slug = store_issue(database, small)
    barrier = threading.Barrier(2)
    outcomes: list[str | campaigns.CampaignExists] = []

    def send() -> None:
        db = Database(database.url)  # its own engine, as another `send` process would have
        try:
            barrier.wait()
            campaigns.create_campaign(db, small, slug)
            outcomes.append("created")
        except campaigns.CampaignExists as exc:
            outcomes.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    (cid,) = [i.id for i in campaigns.list_campaigns(database)]
    (refused,) = [o for o in outcomes if isinstance(o, campaigns.CampaignExists)]
    assert outcomes.count("created") == 1
    assert (refused.slug, refused.campaign_id, refused.status) == (
        slug,
        cid,
        CampaignStatus.SCHEDULED,
    )
    assert refused.unfinished and str(refused) == f"campaign {cid} of {slug} is scheduled"


def test_again_only_after_earlier_campaigns_finished(database: Database, small: Settings) -> None:
    add_subscribers(database, 3)
    slug = store_issue(database, small)
    first = campaigns.create_campaign(database, small, slug)
    with pytest.raises(campaigns.CampaignExists, match="is scheduled"):
        campaigns.create_campaign(database, small, slug, again=True)
    campaigns.pause_campaign(database, first)
    with pytest.raises(campaigns.CampaignExists, match="is paused"):
        campaigns.create_campaign(database, small, slug, again=True)
    run_campaign(database, small, first, resume=True)
    with pytest.raises(campaigns.CampaignExists, match="already sent") as sent:
        campaigns.create_campaign(database, small, slug)
    assert not sent.value.unfinished and not sent.value.failed
    assert sent.value.campaign_id == first and sent.value.finished_at is not None
    second = campaigns.create_campaign(database, small, slug, again=True)
    campaigns.cancel_campaign(database, second)
    assert campaigns.create_campaign(database, small, slug, again=True) > second


def test_a_failed_campaign_must_be_resumed_or_superseded_deliberately(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 1)
    slug = store_issue(database, small)
    first = campaigns.create_campaign(database, small, slug)
    with database.engine.begin() as conn:
        conn.execute(update(C).where(C.c.id == first).values(status="failed"))
    with pytest.raises(campaigns.CampaignExists) as raised:
        campaigns.check_new_campaign(database, slug)
    assert raised.value.failed and raised.value.campaign_id == first
    campaigns.check_new_campaign(database, slug, again=True)  # allowed on purpose


def test_pause_and_cancel_refuse_a_finished_campaign_with_its_status(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 2)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    run_campaign(database, small, cid)
    for operation in (campaigns.pause_campaign, campaigns.cancel_campaign):
        with pytest.raises(campaigns.WrongStatus) as raised:
            operation(database, cid)
        assert raised.value.campaign_id == cid and raised.value.status is CampaignStatus.SENT
        assert not raised.value.resumable
    with pytest.raises(campaigns.WrongStatus):
        campaigns.check_resume(database, cid)
    with pytest.raises(campaigns.IssueNotFound) as missing:
        campaigns.create_campaign(database, small, "no-such-issue")
    assert missing.value.slug == "no-such-issue"


def test_plan_send_says_what_a_send_would_do(database: Database, small: Settings) -> None:
    with pytest.raises(campaigns.IssueNotFound):
        campaigns.plan_send(database, small, "no-such-issue")
    slug = store_issue(database, small)
    add_subscribers(database, 3)
    plan = campaigns.plan_send(database, small, slug)
    assert (plan.slug, plan.audience, plan.transport) == (slug, 3, "outbox")
    assert plan.subject and not plan.ready  # stored as a draft
    cid = campaigns.create_campaign(database, small, slug)
    with pytest.raises(campaigns.CampaignExists) as exists:
        campaigns.plan_send(database, small, slug)
    assert exists.value.campaign_id == cid and exists.value.unfinished
