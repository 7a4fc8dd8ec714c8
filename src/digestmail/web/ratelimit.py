"""Rate limits of the web app, kept where every web process sees them.

``DIGESTMAIL_RATE_LIMIT_STORAGE`` names the storage (any URI the ``limits`` package
supports). The default, ``memory://``, counts in each process's memory: right for one
process, but with several behind a proxy each would allow the full limit. Point them
all at one Redis (``redis://HOST:6379/0``) and they share one count.

Every limit of the app (the subscribe forms now, the staff login next) is a
``Limiter`` made here from the settings, so they all count in the same storage.
"""

from __future__ import annotations

import logging

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MovingWindowSupport, SlidingWindowCounterSupport, storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from digestmail.config import Settings

log = logging.getLogger(__name__)


class Limiter:
    """One rate limit (e.g. ``5/minute``) counted per key in the configured storage.

    ``fail_open``: the answer while the storage cannot be reached. A public form stays
    open (double opt-in still guards the list) and the outage is logged; a login
    limit would rather refuse.
    """

    def __init__(
        self, strategy: RateLimiter, limit: RateLimitItem, *, name: str, fail_open: bool
    ) -> None:
        self.strategy = strategy
        self.limit = limit
        self.name = name
        self.fail_open = fail_open

    def hit(self, *keys: str) -> bool:
        """Count one request for ``keys``; False once the limit is used up."""
        try:
            return self.strategy.hit(self.limit, self.name, *keys)
        except StorageError as exc:
            return self._unavailable(exc)

    def allows(self, *keys: str) -> bool:
        """Whether one more request for ``keys`` is within the limit, without counting it."""
        try:
            return self.strategy.test(self.limit, self.name, *keys)
        except StorageError as exc:
            return self._unavailable(exc)

    def _unavailable(self, exc: StorageError) -> bool:
        log.error(
            "rate limit %s: storage unavailable (%s: %s); %s",
            self.name,
            type(exc.storage_error).__name__,
            exc.storage_error,
            "allowing the request" if self.fail_open else "refusing the request",
        )
        return self.fail_open


def strategy_for(settings: Settings) -> RateLimiter:
    """The counting strategy over the configured storage (one per app, shared by its limits).

    A moving window where the storage supports it (memory, Redis, MongoDB); memcached
    counts a sliding window instead. Building it does not connect: a storage that is
    down shows up, and is logged, on the first request.
    """
    storage = storage_from_string(
        settings.rate_limit_storage.get_secret_value(), wrap_exceptions=True
    )
    if isinstance(storage, MovingWindowSupport):
        return MovingWindowRateLimiter(storage)
    if isinstance(storage, SlidingWindowCounterSupport):
        return SlidingWindowCounterRateLimiter(storage)
    return FixedWindowRateLimiter(storage)


def subscribe_limiter(settings: Settings, strategy: RateLimiter) -> Limiter:
    """``DIGESTMAIL_SUBSCRIBE_LIMIT`` per client address, on the public forms."""
    return Limiter(strategy, parse(settings.subscribe_limit), name="subscribe", fail_open=True)


def login_limiter(settings: Settings, strategy: RateLimiter) -> Limiter:
    """``DIGESTMAIL_LOGIN_LIMIT`` failed staff sign-ins, per client address and per account.

    Fails closed: while the storage is unreachable nobody can sign in, rather than
    anybody trying passwords without limit.
    """
    return Limiter(strategy, parse(settings.login_limit), name="login", fail_open=False)
