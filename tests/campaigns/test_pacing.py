"""The send-rate cap."""

from __future__ import annotations

import time

import pytest

from digestmail import campaigns
from digestmail.campaigns import TokenBucket, run_campaign
from digestmail.campaigns.pacing import batch_size
from digestmail.config import Settings
from digestmail.db import Database
from tests.campaign_helpers import HookedOutbox, add_subscribers, store_issue


def test_send_rate_caps_messages_per_second(database: Database, small: Settings) -> None:
    add_subscribers(database, 30)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    rated = small.model_copy(update={"send_rate": 20.0, "batch_size": 1000})
    sizes: list[int] = []

    started = time.monotonic()
    run_campaign(
        database, rated, cid, transport=HookedOutbox(rated, lambda _, r: sizes.append(len(r)))
    )
    elapsed = time.monotonic() - started

    assert sizes == [20, 10]  # one second's worth per batch
    assert elapsed >= 0.45  # 20 go at once (the burst), the next 10 wait half a second


def test_token_bucket_never_exceeds_the_rate() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(50):
        bucket.take(30)
    # 1,500 messages at 100/s with a 100-message burst: at least 14 seconds.
    assert now[0] == pytest.approx(14.0)
    assert TokenBucket(0, clock=lambda: 0.0, sleep=sleep).take(10**6) == 0.0


def test_batch_size_keeps_to_the_transport_and_to_one_second_of_the_rate() -> None:
    assert batch_size(1000, 1000, 0) == 1000
    assert batch_size(1000, 50, 0) == 50  # the transport's limit
    assert batch_size(1000, 1000, 20.5) == 20  # one second's worth at 20.5/s
    assert batch_size(10, 1000, 500) == 10
    assert batch_size(1000, 1000, 0.2) == 1  # slower than one a second: one at a time
