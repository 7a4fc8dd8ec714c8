"""Every setting the system reads, in one place.

Values come from ``DIGESTMAIL_*`` environment variables (plus ``SENDGRID_API_KEY``);
nothing else in the package reads the environment, so the README's table and this
class cannot drift apart unnoticed (``tests/test_config.py`` checks that).
"""

from __future__ import annotations

import re
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Transport = Literal["outbox", "smtp", "sendgrid"]

# Used only when DIGESTMAIL_SECRET_KEY is unset: fine on a laptop with the outbox,
# refused for any transport that sends real mail (links signed with a public key
# could be forged to unsubscribe anyone).
DEV_SECRET_KEY = "digestmail-development-key-change-me"

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIGESTMAIL_", env_file=None, extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///subscribers.db"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)

    transport: Transport = "outbox"
    outbox_dir: Path = Path("outbox")
    smtp_url: SecretStr | None = None
    sendgrid_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SENDGRID_API_KEY", "DIGESTMAIL_SENDGRID_API_KEY"),
    )
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_timeout: float = 30.0
    smtp_timeout: float = Field(default=30.0, gt=0)
    sendgrid_webhook_key: SecretStr | None = None
    inbound_token: SecretStr | None = None

    publication: str = "Policy Digest"
    from_: str = Field(
        default="Policy Digest <digest@example.org>",
        validation_alias=AliasChoices("DIGESTMAIL_FROM"),
    )
    reply_to: str | None = None
    contact_address: str = "digest@example.org"
    postal_address: str = "Example Policy Institute, 100 Example Street, Washington, DC 20001, USA"
    list_id: str | None = None

    batch_size: int = Field(default=1000, ge=1, le=1000)
    send_rate: float = Field(default=0.0, ge=0)
    smtp_connections: int = Field(default=4, ge=1, le=64)
    subscribe_limit: str = "5/minute"
    sender_lease: int = Field(default=30, ge=2)
    misfire_grace: int = Field(default=6 * 3600, ge=0)
    confirm_max_age: int = Field(default=7 * 24 * 3600, ge=60)
    templates_dir: Path | None = None
    log_level: str = "INFO"
    # Scheduling: the zone of times staff give without one, who hears what the scheduler
    # did, and how often it reads the schedules table (the delay before an edit applies).
    timezone: str = "UTC"
    staff_emails: Annotated[tuple[str, ...], NoDecode] = ()
    scheduler_sync: float = Field(default=2.0, gt=0, le=60)

    @field_validator("base_url", "sendgrid_api_host")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("subscribe_limit")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        if not _RATE_RE.match(value):
            raise ValueError("expected a rate such as '5/minute' (per second, minute, hour or day)")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r}; use a name such as America/New_York or UTC"
            ) from None
        return value

    @field_validator("staff_emails", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        addresses = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                addresses.append(validate_email(item, check_deliverability=False).normalized)
            except EmailNotValidError as exc:
                raise ValueError(f"{item!r} is not an email address: {exc}") from None
        return tuple(addresses)

    @model_validator(mode="after")
    def _real_mail_needs_real_secrets(self) -> Settings:
        dev_key = self.secret_key.get_secret_value() == DEV_SECRET_KEY
        if dev_key and not _is_loopback(self.base_url):
            # Links signed with a public key can be forged: anyone could confirm,
            # unsubscribe or look up any subscriber of a reachable server.
            raise ValueError(
                f"DIGESTMAIL_SECRET_KEY must be set to a long random value when "
                f"DIGESTMAIL_BASE_URL is not this machine ({self.base_url}); "
                "the built-in key is public"
            )
        if self.transport == "outbox":
            return self
        if dev_key:
            raise ValueError(
                f"DIGESTMAIL_SECRET_KEY must be set to a long random value when "
                f"DIGESTMAIL_TRANSPORT={self.transport} (the built-in key is public)"
            )
        if self.transport == "smtp" and self.smtp_url is None:
            raise ValueError("DIGESTMAIL_SMTP_URL is required when DIGESTMAIL_TRANSPORT=smtp")
        if self.transport == "sendgrid" and self.sendgrid_api_key is None:
            raise ValueError("SENDGRID_API_KEY is required when DIGESTMAIL_TRANSPORT=sendgrid")
        return self

    @property
    def effective_reply_to(self) -> str:
        """Replies go to the contact address unless a Reply-To is configured."""
        return self.reply_to or self.contact_address

    @property
    def effective_list_id(self) -> str:
        """RFC 2919 List-Id: the configured one, else derived from the sender's domain."""
        if self.list_id:
            return self.list_id
        domain = self.contact_address.rpartition("@")[2] or "localhost"
        slug = re.sub(r"[^a-z0-9]+", "-", self.publication.lower()).strip("-") or "digest"
        return f"{self.publication} <{slug}.{domain}>"


def is_loopback(host: str) -> bool:
    """True for a host name or address that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
