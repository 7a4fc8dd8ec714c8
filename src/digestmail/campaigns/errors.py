"""What a campaign operation can refuse, as data: ids, statuses, times, reasons.

Nothing here names a command or says what to type: the CLI and the admin turn these
facts into words and hints of their own. ``str()`` of each is a plain statement of the
facts, for logs.
"""

from __future__ import annotations

from datetime import datetime

from digestmail.models import CampaignStatus

# Statuses a sender may pick a campaign up from by itself; paused and failed only on an
# explicit resume (staff stopped it, or it needs a fix first).
STARTABLE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)
RESUMABLE = (*STARTABLE, CampaignStatus.PAUSED, CampaignStatus.FAILED)
# A campaign in one of these still has recipients to reach: no second one may start.
UNFINISHED = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)


class CampaignError(Exception):
    """A campaign operation that cannot be done; subclasses carry the facts."""


class CampaignNotFound(CampaignError):
    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"there is no campaign {campaign_id}")
        self.campaign_id = campaign_id


class IssueNotFound(CampaignError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"there is no issue {slug!r}")
        self.slug = slug


class WrongStatus(CampaignError):
    """The campaign's status does not allow what was asked (pausing a sent one, …)."""

    def __init__(self, campaign_id: int, status: CampaignStatus) -> None:
        super().__init__(f"campaign {campaign_id} is {status.value}")
        self.campaign_id = campaign_id
        self.status = status

    @property
    def resumable(self) -> bool:
        """Whether an explicit resume would continue it (it is paused or failed)."""
        return self.status in RESUMABLE


class CampaignExists(CampaignError):
    """The issue has an unfinished campaign, or was sent before (and ``again`` not given).

    ``campaign_id``/``status``/``finished_at`` describe the issue's newest campaign
    (``None`` when the issue is marked sent without one).
    """

    def __init__(
        self,
        slug: str,
        *,
        campaign_id: int | None,
        status: CampaignStatus | None,
        finished_at: datetime | None = None,
    ) -> None:
        self.slug = slug
        self.campaign_id = campaign_id
        self.status = status
        self.finished_at = finished_at
        if status is not None and (self.unfinished or status is CampaignStatus.FAILED):
            text = f"campaign {campaign_id} of {slug} is {status.value}"
        else:
            when = ""
            if campaign_id is not None and status is not None:
                done = f", {finished_at:%Y-%m-%d %H:%M} UTC" if finished_at else ""
                when = f" (campaign {campaign_id}, {status.value}{done})"
            text = f"{slug} was already sent{when}"
        super().__init__(text)

    @property
    def unfinished(self) -> bool:
        """A campaign of the issue still has recipients to reach (continue or cancel it)."""
        return self.status in UNFINISHED

    @property
    def failed(self) -> bool:
        """The newest campaign failed (continue it, or start another deliberately)."""
        return self.status is CampaignStatus.FAILED


class LeaseHeld(CampaignError):
    """Another live process is sending this campaign."""

    def __init__(self, campaign_id: int, owner: str | None, expires_at: datetime | None) -> None:
        until = f" (lease until {expires_at:%Y-%m-%d %H:%M:%S} UTC)" if expires_at else ""
        super().__init__(f"campaign {campaign_id} is being sent by {owner}{until}")
        self.campaign_id = campaign_id
        self.owner = owner
        self.expires_at = expires_at


class LeaseLost(CampaignError):
    """Our lease expired and another sender took the campaign over."""

    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"lost the lease on campaign {campaign_id}; another sender has it")
        self.campaign_id = campaign_id


class MessageNotBuilt(CampaignError):
    """The issue cannot become a valid email (a header over the RFC 5322 line limit, …).

    Trying again cannot help until the issue is fixed. ``campaign_id`` is None for a
    test send. ``reason`` is the builder's own words.
    """

    def __init__(self, slug: str, reason: str, *, campaign_id: int | None = None) -> None:
        where = f"campaign {campaign_id}: " if campaign_id is not None else ""
        super().__init__(f"{where}issue {slug!r} cannot be built into a message: {reason}")
        self.slug = slug
        self.reason = reason
        self.campaign_id = campaign_id


class EmptyAudience(CampaignError):
    """Nobody is active: a campaign would send the issue to nobody and mark it sent.

    ``campaign_id`` is set when a campaign found its audience empty as it started (it is
    then cancelled, and the issue stays unsent).
    """

    def __init__(self, slug: str, *, campaign_id: int | None = None) -> None:
        where = f"campaign {campaign_id}: " if campaign_id is not None else ""
        super().__init__(f"{where}no active subscribers to send {slug!r} to")
        self.slug = slug
        self.campaign_id = campaign_id
