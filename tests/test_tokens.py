"""Signed link tokens: bound to a subscriber and a purpose; confirmations expire."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from digestmail.config import Settings
from digestmail.models import MAX_ID
from digestmail.tokens import (
    Purpose,
    TokenError,
    UnsubscribeLinks,
    _serializer,
    confirm_url,
    make_token,
    read_signed,
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


def _signing_at(cfg: Settings, signed_at: int) -> URLSafeTimedSerializer:
    """itsdangerous's own unsubscribe serializer, its clock stopped at ``signed_at``."""

    class At(TimestampSigner):
        def get_timestamp(self) -> int:
            return signed_at

    serializer = _serializer(cfg, Purpose.UNSUBSCRIBE)
    serializer.signer = At
    return serializer


@settings(max_examples=100, deadline=None)
@given(
    subscriber_id=st.integers(min_value=1, max_value=MAX_ID),
    signed_at=st.integers(min_value=0, max_value=2**33),  # to the year 2242
    secret=st.text(min_size=1, max_size=200),
)
def test_property_fast_tokens_equal_itsdangerous_and_read_back(
    subscriber_id: int, signed_at: int, secret: str
) -> None:
    """For any id, signing time and key (long keys are hashed first, as HMAC says), the
    campaign's fast token is the string itsdangerous makes, and the unsubscribe route's
    reader takes it: links in emails sent before and after stay interchangeable."""
    cfg = Settings(secret_key=secret)
    serializer = _signing_at(cfg, signed_at)
    links = UnsubscribeLinks(cfg)
    links.tick(signed_at)
    token = links.token(subscriber_id)
    assert token == serializer.dumps(subscriber_id)
    assert links(subscriber_id) == f"{cfg.base_url}/unsubscribe/{token}"
    signed = read_signed(cfg, Purpose.UNSUBSCRIBE, token)
    assert signed.subscriber_id == subscriber_id
    assert signed.signed_at == datetime.fromtimestamp(signed_at, UTC)
    with pytest.raises(TokenError):  # and it is still bound to its purpose
        read_token(cfg, Purpose.CONFIRM, token)


@pytest.mark.parametrize("value", [10**30, 2**31, 0, -1, True, 1.5, "7", [7], None])
def test_ids_no_row_can_have_are_invalid_links(cfg: Settings, value: object) -> None:
    for purpose in Purpose:
        token = _serializer(cfg, purpose).dumps(value)
        with pytest.raises(TokenError) as info:
            read_token(cfg, purpose, token)
        assert not info.value.expired


def test_signed_time_is_read_back(cfg: Settings) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    signed = read_signed(cfg, Purpose.CONFIRM, make_token(cfg, Purpose.CONFIRM, 9))
    assert signed.subscriber_id == 9
    assert before <= signed.signed_at <= datetime.now(UTC)


@settings(max_examples=300)
@given(token=st.text(max_size=120))
def test_property_any_string_is_a_valid_link_or_an_invalid_one(token: str) -> None:
    cfg = Settings(secret_key="k1")
    for purpose in Purpose:
        try:
            value = read_token(cfg, purpose, token)
        except TokenError as exc:
            assert str(exc)  # says why
        else:
            assert 0 < value <= MAX_ID


_payloads = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=200)
@given(payload=_payloads)
def test_property_signed_payloads_read_as_ids_in_range_or_refused(payload: object) -> None:
    """Even with the key (a token made elsewhere), only a real id comes out."""
    cfg = Settings(secret_key="k1")
    for purpose in Purpose:
        token = _serializer(cfg, purpose).dumps(payload)
        try:
            value = read_token(cfg, purpose, token)
        except TokenError:
            continue
        assert type(value) is int and 0 < value <= MAX_ID and value == payload


@settings(max_examples=200)
@given(subscriber_id=st.integers(min_value=1, max_value=MAX_ID))
def test_property_every_id_round_trips(subscriber_id: int) -> None:
    cfg = Settings(secret_key="k1")
    for purpose in Purpose:
        assert read_token(cfg, purpose, make_token(cfg, purpose, subscriber_id)) == subscriber_id


@settings(max_examples=300, deadline=None)
@given(value=st.integers(min_value=-MAX_ID, max_value=MAX_ID), signed_at=st.integers(0, 2**40))
def test_property_fast_tokens_equal_itsdangerous_for_any_int(value: int, signed_at: int) -> None:
    """The fast links skip the URL-safe translation of the payload (base64 of digits and
    a minus never holds '+' or '/'): for any int of an id's size, whatever its sign, the
    token is still the one ``dumps`` makes, and the link is the prefix and that token.
    (``dumps`` zlib-compresses a payload when that makes it shorter, which can happen
    from 13 characters on; an id has at most 10 digits.)"""
    cfg = Settings(secret_key="k1-" + "x" * 32, base_url="https://digest.example.org/news")
    serializer = _signing_at(cfg, signed_at)
    links = UnsubscribeLinks(cfg)
    links.tick(signed_at)
    assert links(value) == "https://digest.example.org/news/unsubscribe/" + serializer.dumps(value)
    assert links.token(value) == serializer.dumps(value)
