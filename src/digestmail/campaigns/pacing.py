"""Pacing: the send rate cap (``DIGESTMAIL_SEND_RATE``), batch sizes, batches in flight."""

from __future__ import annotations

import time
from collections.abc import Callable

from digestmail.config import Settings


class TokenBucket:
    """Caps the average send rate at ``rate`` messages per second, with a one-second burst.

    A batch takes its tokens up front and may go into debt; the next call waits the debt
    off. Over any long run the rate never exceeds ``rate``. The clock and the sleep are
    parameters, so tests run without waiting.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.last = clock()

    def take(self, n: int) -> float:
        """Wait until ``n`` messages may go; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        waited = 0.0
        if self.tokens < n:
            waited = (n - self.tokens) / self.rate
            self.sleep(waited)
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
        self.tokens -= n
        return waited


def batch_size(configured: int, transport_max: int, send_rate: float) -> int:
    """Recipients per batch: the configured size, within the transport's limit, and with a
    rate cap at most one second's worth (smooth pacing, and a pause stays quick)."""
    size = min(configured, transport_max)
    if send_rate > 0:
        size = min(size, max(1, int(send_rate)))
    return size


def in_flight_limit(settings: Settings) -> int:
    """Most recipients a sender has handed over without an answer yet: ``send_concurrency``
    batches. A sender that dies leaves at most these claimed, and a resume sends them
    again, so this is how many may receive an issue twice after a crash."""
    size = batch_size(settings.batch_size, settings.batch_size, settings.send_rate)
    return settings.send_concurrency * size
