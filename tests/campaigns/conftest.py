"""Fixtures of the campaign tests."""

from __future__ import annotations

import pytest

from digestmail.config import Settings


@pytest.fixture
def small(settings: Settings) -> Settings:
    """Batches of ten and a short lease: a few dozen subscribers make several batches."""
    return settings.model_copy(update={"batch_size": 10, "sender_lease": 5})
