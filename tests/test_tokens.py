"""Signed link tokens: bound to a subscriber and a purpose; confirmations expire."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner

from digestmail.config import Settings
from digestmail.tokens import (
    Purpose,
    TokenError,
    UnsubscribeLinks,
    confirm_url,
    make_token,
    read_token,
    unsubscribe_url,
)


@pytest.fixture
def cfg() -> Settings:
    return Settings(secret_key="k1-" + "x" * 32, base_url="https://digest.example.org/")


def _aged(cfg: Settings, purpose: Purpose, seconds: int) -> str:
    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    from digestmail import tokens

    serializer = tokens._serializer(cfg, purpose)
    serializer.signer = Old
    return str(serializer.dumps(7))


def test_round_trip_and_urls(cfg: Settings) -> None:
    for purpose in Purpose:
        assert read_token(cfg, purpose, make_token(cfg, purpose, 42)) == 42
    assert confirm_url(cfg, 1).startswith("https://digest.example.org/confirm/")
    assert unsubscribe_url(cfg, 1).startswith("https://digest.example.org/unsubscribe/")


def test_purposes_and_keys_do_not_mix(cfg: Settings) -> None:
    with pytest.raises(TokenError):
        read_token(cfg, Purpose.CONFIRM, make_token(cfg, Purpose.UNSUBSCRIBE, 1))
    other = Settings(secret_key="k2")
    with pytest.raises(TokenError) as info:
        read_token(other, Purpose.UNSUBSCRIBE, make_token(cfg, Purpose.UNSUBSCRIBE, 1))
    assert not info.value.expired


def test_tampering_is_detected(cfg: Settings) -> None:
    token = make_token(cfg, Purpose.UNSUBSCRIBE, 5)
    _, _, rest = token.partition(".")
    forged = make_token(cfg, Purpose.UNSUBSCRIBE, 6).partition(".")[0] + "." + rest
    with pytest.raises(TokenError):
        read_token(cfg, Purpose.UNSUBSCRIBE, forged)
    with pytest.raises(TokenError):
        read_token(cfg, Purpose.UNSUBSCRIBE, token + "x")


def test_confirm_expires_after_seven_days_unsubscribe_never(cfg: Settings) -> None:
    assert read_token(cfg, Purpose.CONFIRM, _aged(cfg, Purpose.CONFIRM, 6 * 86400)) == 7
    with pytest.raises(TokenError) as info:
        read_token(cfg, Purpose.CONFIRM, _aged(cfg, Purpose.CONFIRM, 8 * 86400))
    assert info.value.expired
    assert (
        read_token(cfg, Purpose.UNSUBSCRIBE, _aged(cfg, Purpose.UNSUBSCRIBE, 3 * 365 * 86400)) == 7
    )


def test_fast_unsubscribe_links_are_the_tokens_itsdangerous_makes() -> None:
    settings = Settings()
    links = UnsubscribeLinks(settings)
    for subscriber_id in (1, 42, 987654321):
        for _ in range(3):  # retry if a second boundary falls between the two
            links.tick()
            ours = links(subscriber_id)
            theirs = unsubscribe_url(settings, subscriber_id)
            if ours == theirs:
                break
        assert ours == theirs
        assert read_token(settings, Purpose.UNSUBSCRIBE, ours.rsplit("/", 1)[1]) == subscriber_id
