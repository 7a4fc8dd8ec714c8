"""Signed tokens in links: confirm a subscription, unsubscribe.

A token names the subscriber and is signed with the secret key and a salt per
purpose, so a confirmation token cannot be replayed as an unsubscribe token or the
other way round. Confirmation tokens expire; unsubscribe tokens never do (an old
email's link must always work).
"""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from digestmail.config import Settings


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"


class TokenError(ValueError):
    """A token that is not ours, was altered, or is past its time."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def _serializer(settings: Settings, purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        settings.secret_key.get_secret_value(), salt=f"digestmail.{purpose.value}"
    )


def make_token(settings: Settings, purpose: Purpose, subscriber_id: int) -> str:
    return _serializer(settings, purpose).dumps(subscriber_id)


def read_token(settings: Settings, purpose: Purpose, token: str) -> int:
    """The subscriber id in a valid token; raises ``TokenError`` otherwise."""
    max_age = settings.confirm_max_age if purpose is Purpose.CONFIRM else None
    try:
        value = _serializer(settings, purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenError("this link has expired", expired=True) from exc
    except BadSignature as exc:
        raise TokenError("this link is not valid") from exc
    if not isinstance(value, int):
        raise TokenError("this link is not valid")
    return value


def unsubscribe_url(settings: Settings, subscriber_id: int) -> str:
    token = make_token(settings, Purpose.UNSUBSCRIBE, subscriber_id)
    return f"{settings.base_url}/unsubscribe/{token}"


def confirm_url(settings: Settings, subscriber_id: int) -> str:
    token = make_token(settings, Purpose.CONFIRM, subscriber_id)
    return f"{settings.base_url}/confirm/{token}"
