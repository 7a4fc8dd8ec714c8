"""Fixtures of the campaign tests."""

from __future__ import annotations

import pytest

from digestmail.config import Settings


@pytest.fixture
def small(settings: Settings) -> Settings:
    """Batches of ten and a short lease: a few dozen subscribers make several batches.

    One batch in flight at a time, so that a test can say which batch a step hits;
    ``parallel`` has several.
    """
    return settings.model_copy(update={"batch_size": 10, "sender_lease": 5, "send_concurrency": 1})


@pytest.fixture
def parallel(small: Settings) -> Settings:
    """``small`` with four batches in flight at once."""
    return small.model_copy(update={"send_concurrency": 4})
