"""Campaigns: one issue to every active subscriber, exactly once, whatever happens.

The package, by concern:

- ``errors``: what an operation can refuse, as data (ids, statuses, reasons);
- ``info``: reading a campaign and its ledger counts (``CampaignInfo``);
- ``operations``: what staff do (create, pause, cancel; whether a resume can continue);
- ``message``: the per-issue message template, each recipient's values, test sends;
- ``pacing``: the send-rate cap, batch sizes, and how many recipients may be in flight;
- ``lease``: at most one sender per campaign, and its heartbeat;
- ``ledger``: one row per recipient and every move of it, on the caller's connection;
- ``sender``: the send loop (``run_campaign``), and what each failure leads to.

Nothing here knows about the command line: the CLI, the admin and the scheduler call
the same functions, and turn the errors' facts into their own words.
"""

from __future__ import annotations

from digestmail.campaigns.errors import (
    UNFINISHED,
    CampaignError,
    CampaignExists,
    CampaignNotFound,
    EmptyAudience,
    IssueNotFound,
    LeaseHeld,
    LeaseLost,
    MessageNotBuilt,
    WrongStatus,
)
from digestmail.campaigns.info import (
    CampaignInfo,
    active_audience_size,
    campaign_info,
    list_campaigns,
)
from digestmail.campaigns.ledger import TEMPORARY
from digestmail.campaigns.message import message_template, sample_reader_values, send_test
from digestmail.campaigns.operations import (
    SendPlan,
    cancel_campaign,
    check_new_campaign,
    check_resume,
    create_campaign,
    pause_campaign,
    plan_send,
)
from digestmail.campaigns.pacing import TokenBucket, in_flight_limit
from digestmail.campaigns.sender import (
    DEFAULT_RECIPIENT_RETRY_DELAYS,
    DEFAULT_RETRY_DELAYS,
    MAX_RETRY_AFTER,
    WAIT_STEP,
    SendProgress,
    run_campaign,
)

__all__ = [
    "DEFAULT_RECIPIENT_RETRY_DELAYS",
    "DEFAULT_RETRY_DELAYS",
    "MAX_RETRY_AFTER",
    "TEMPORARY",
    "UNFINISHED",
    "WAIT_STEP",
    "CampaignError",
    "CampaignExists",
    "CampaignInfo",
    "CampaignNotFound",
    "EmptyAudience",
    "IssueNotFound",
    "LeaseHeld",
    "LeaseLost",
    "MessageNotBuilt",
    "SendPlan",
    "SendProgress",
    "TokenBucket",
    "WrongStatus",
    "active_audience_size",
    "campaign_info",
    "cancel_campaign",
    "check_new_campaign",
    "check_resume",
    "create_campaign",
    "in_flight_limit",
    "list_campaigns",
    "message_template",
    "pause_campaign",
    "plan_send",
    "run_campaign",
    "sample_reader_values",
    "send_test",
]
