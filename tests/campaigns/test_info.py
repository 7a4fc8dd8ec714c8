"""Reading campaigns: counts, times, JSON."""

from __future__ import annotations

import pytest

from digestmail import campaigns
from digestmail.campaigns import run_campaign
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import ID_MAX, CampaignStatus
from tests.campaign_helpers import add_subscribers, store_issue


def test_list_and_status_report_counts_and_times(database: Database, small: Settings) -> None:
    add_subscribers(database, 12)
    slug = store_issue(database, small)
    first = campaigns.create_campaign(database, small, slug)
    run_campaign(database, small, first)
    second = campaigns.create_campaign(database, small, slug, again=True)

    listed = campaigns.list_campaigns(database)
    assert [i.id for i in listed] == [second, first]
    assert listed[1].status is CampaignStatus.SENT  # the enum, not a string
    data = listed[1].to_json()
    assert data["issue"] == slug and data["status"] == "sent"
    assert data["counts"] == {
        "pending": 0,
        "claimed": 0,
        "accepted": 12,
        "rejected": 0,
        "skipped": 0,
    }
    assert data["started_at"] and data["finished_at"] and data["sender"] is None
    assert data["error"] is None and data["error_reason"] is None and data["error_data"] == {}
    assert listed[0].to_json()["started_at"] is None and listed[0].total == 0
    with pytest.raises(campaigns.CampaignNotFound):
        campaigns.campaign_info(database, 999)


@pytest.mark.parametrize("campaign_id", [0, -1, ID_MAX + 1, 99999999999999999999])
def test_an_id_no_campaign_can_have_is_not_found_rather_than_overflowing(
    database: Database, campaign_id: int
) -> None:
    with pytest.raises(campaigns.CampaignNotFound) as raised:
        campaigns.campaign_info(database, campaign_id)
    assert raised.value.campaign_id == campaign_id
    for operation in (campaigns.pause_campaign, campaigns.cancel_campaign):
        with pytest.raises(campaigns.CampaignNotFound):
            operation(database, campaign_id)
