"""``digestmail scheduler``: the scheduler alone, as the deployment's one scheduler process."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from digestmail.cli.common import console, database
from digestmail.config import get_settings


def scheduler() -> None:
    """Run the scheduler: scheduled sends, campaigns whose sender died, reminders to staff.

    Stop it with Ctrl+C or SIGTERM: sends in progress finish their batch and are handed
    on (the next scheduler continues them at once).
    """
    from digestmail.scheduling.runner import Scheduler

    settings = get_settings()
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        # A second Ctrl+C stops at once, without waiting for the sends' batches.
        signal.signal(signum, signal.SIG_DFL)

    with database() as db:  # refused unless it has this version's schema
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        running = Scheduler(settings, db)
        running.start()
        console.print("Scheduler running. Stop it with Ctrl+C.")
        while not stopping.wait(1):
            pass
        console.print("Stopping: sends in progress finish their batch first.")
        running.stop()
