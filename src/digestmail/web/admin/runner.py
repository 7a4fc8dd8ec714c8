"""Campaigns sent from the admin run in a thread of the web process, not in the request.

``start`` hands the campaign to ``campaigns.run_campaign`` (what ``send`` and
``campaign resume`` run in the foreground) on a thread of its own and waits only
until the sender has taken the campaign (or refused to: another sender has it, its
status does not allow it), so the page can say which. Progress is in the database, as
always; the page reads it from there.

If the web process stops mid-send, the campaign stays ``sending`` until its lease runs
out; it is then resumed like any campaign whose sender died.
"""

from __future__ import annotations

import logging
import threading

from digestmail import campaigns
from digestmail.campaigns import CampaignError, SendProgress
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.transports.base import TransportError

log = logging.getLogger(__name__)

# How long a click waits to hear that the sender took the campaign.
START_WAIT = 10.0


class CampaignRunner:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, campaign_id: int, *, resume: bool) -> CampaignError | None:
        """Send the campaign in the background; the refusal if its sender could not start.

        A sender of this process that is still finishing its batches after a pause (it
        holds the campaign's lease until then) is waited for first, so that Continue
        right after Pause goes on rather than finding the campaign taken.
        """
        with self._lock:
            earlier = self._threads.get(campaign_id)
        if earlier is not None:
            earlier.join(START_WAIT)
        taken = threading.Event()
        refused: list[CampaignError] = []

        def on_progress(_progress: SendProgress) -> None:
            taken.set()

        def work() -> None:
            try:
                campaigns.run_campaign(
                    self.db, self.settings, campaign_id, resume=resume, on_progress=on_progress
                )
            except CampaignError as exc:
                if not taken.is_set():
                    refused.append(exc)
                log.warning("campaign %s stopped: %s", campaign_id, exc)
            except TransportError as exc:
                # The sender has recorded why on the campaign; its page says so.
                log.warning("campaign %s stopped: %s", campaign_id, exc)
            except Exception:
                log.exception("campaign %s: the background sender failed", campaign_id)
            finally:
                taken.set()

        thread = threading.Thread(target=work, name=f"campaign-{campaign_id}", daemon=True)
        with self._lock:
            self._threads = {c: t for c, t in self._threads.items() if t.is_alive()}
            self._threads[campaign_id] = thread
        thread.start()
        taken.wait(START_WAIT)
        return refused[0] if refused else None
