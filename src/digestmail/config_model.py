"""The model of every setting: ``Settings``, which ``digestmail.config`` gives out.

Import it from there (``from digestmail.config import Settings``): ``config.py`` is the
one place the environment is read (``Settings()`` reads it through
``config.environment_values``) and holds the checks; this module is the pydantic model
that names each setting's type, default and bounds. It is a module of its own so that a
command that needs only a few settings (``config.get_light_settings``) starts without
loading pydantic, 0.15 s at every start.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from digestmail.config import (
    _CONTROL_RE,
    _DATABASE_SCHEME,
    _DOMAIN_RE,
    _LOCAL_RE,
    _RATE_RE,
    BOUNCE_LOCAL_MAX,
    DEV_SECRET_KEY,
    SECRET_KEY_MIN,
    NoDecode,
    SMTPConfig,
    Transport,
    _checked_address,
    _is_loopback,
    _web_address,
    checked_log_level,
    environment_values,
    rate_limit_storage_problem,
    webhook_key_text,
)


class Settings(BaseModel):
    """Every setting, read from the environment when constructed; keyword arguments win
    over the environment (tests, and ``model_copy`` for variations)."""

    model_config = ConfigDict(
        # Keyword arguments name fields; the environment is read by ``config.environment_values``.
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        # A refused value may be a secret (a URI with a password): never echo it.
        hide_input_in_errors=True,
        # The defaults below are known good; checking them would load the address and
        # rate-limit libraries into every command, set or not.
        validate_default=False,
    )

    database_url: str = "sqlite:///subscribers.db"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)

    transport: Transport = "outbox"
    outbox_dir: Path = Path("outbox")
    media_dir: Path = Path("media")
    smtp_url: SecretStr | None = None
    sendgrid_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SENDGRID_API_KEY", "DIGESTMAIL_SENDGRID_API_KEY"),
    )
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_timeout: float = Field(default=30.0, gt=0)
    smtp_timeout: float = Field(default=30.0, gt=0)
    sendgrid_webhook_key: SecretStr | None = None
    inbound_token: SecretStr | None = None
    bounce_address: str | None = None
    bounce_imap_url: SecretStr | None = None
    soft_bounce_limit: int = Field(default=5, ge=1, le=1000)
    soft_bounce_days: int = Field(default=30, ge=1, le=3650)

    publication: str = Field(default="US-Japan Alliance Digest", min_length=1)
    from_: str = Field(
        default="US-Japan Alliance Digest <digest@example.org>",
        validation_alias=AliasChoices("DIGESTMAIL_FROM"),
    )
    reply_to: str | None = None
    contact_address: str = "digest@example.org"
    postal_address: str = Field(
        default="Example Policy Institute, 100 Example Street, Washington, DC 20001, USA",
        min_length=1,
    )
    list_id: str | None = None

    batch_size: int = Field(default=1000, ge=1, le=1000)
    send_rate: float = Field(default=0.0, ge=0)
    # Batches (SendGrid requests) in flight at once; a crash may resend this many batches.
    send_concurrency: int = Field(default=4, ge=1, le=32)
    smtp_connections: int = Field(default=4, ge=1, le=64)
    subscribe_limit: str = "5/minute"
    # Failed staff sign-ins allowed per client address and per account before the
    # login refuses more for a while.
    login_limit: str = "5/minute"
    # Seconds a staff sign-in lasts (then the admin asks for the password again).
    admin_session_max_age: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    # A URI, and it may hold a password (redis://:PASSWORD@host): a secret.
    rate_limit_storage: SecretStr = SecretStr("memory://")
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

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**environment_values(type(self)), **values})

    @field_validator("database_url")
    @classmethod
    def _check_database(cls, value: str) -> str:
        # Read from the URL's scheme, not with SQLAlchemy's parser: every command reads
        # the settings, and most (``issue check``, ``--help``) never load SQLAlchemy.
        value = value.strip()
        if not value:
            raise ValueError("is empty")
        scheme = _DATABASE_SCHEME.match(value)
        if scheme is None:
            raise ValueError(
                "is not a database URL; expected sqlite:///FILE or "
                "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
            )
        dialect, driver = scheme.group("dialect"), scheme.group("driver") or ""
        if dialect in ("postgresql", "postgres") and driver in ("", "psycopg"):
            # psycopg (version 3) is the driver installed; plain postgresql:// means it.
            return "postgresql+psycopg://" + value[scheme.end() :]
        if dialect == "sqlite" and driver in ("", "pysqlite"):
            return value
        name = f"{dialect}+{driver}" if driver else dialect
        raise ValueError(
            f"names {name!r}; the databases supported are SQLite (sqlite:///FILE) "
            "and PostgreSQL (postgresql+psycopg://USER:PASSWORD@HOST/DATABASE)"
        )

    @field_validator("base_url", "sendgrid_api_host")
    @classmethod
    def _check_web_address(cls, value: str) -> str:
        return _web_address(value)

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            SMTPConfig.parse(value.get_secret_value())
        return value

    @field_validator("from_", "reply_to")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        return None if value is None else _checked_address(value, display_name=True)

    @field_validator("contact_address")
    @classmethod
    def _check_contact(cls, value: str) -> str:
        # A bare address: it goes into mailto: links and names the List-Id's domain.
        return _checked_address(value, display_name=False)

    @field_validator("publication", "list_id")
    @classmethod
    def _check_one_line(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL_RE.search(value):
            raise ValueError("contains a line break or another control character")
        return value

    @field_validator("postal_address")
    @classmethod
    def _check_postal(cls, value: str) -> str:
        # Several lines are fine (the footer keeps them); other control characters not.
        if _CONTROL_RE.search(value.replace("\r\n", "\n").replace("\n", "")):
            raise ValueError("contains a control character")
        return value

    @field_validator("outbox_dir")
    @classmethod
    def _check_outbox(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{str(value)!r} is a file, not a folder")
        return value

    @field_validator("templates_dir")
    @classmethod
    def _check_templates(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "email").is_dir():
            raise ValueError(
                f"{str(value)!r} is not a templates folder (it needs an email/ folder, "
                "like the bundled templates/)"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        return checked_log_level(value)

    @field_validator("sendgrid_webhook_key")
    @classmethod
    def _check_webhook_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(webhook_key_text(value.get_secret_value()))

    @field_validator("bounce_address")
    @classmethod
    def _check_bounce_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        local, at, domain = value.rpartition("@")
        if not at or not _LOCAL_RE.match(local) or not _DOMAIN_RE.match(domain):
            raise ValueError(
                "expected a plain address such as bounces@bounce.example.org (letters, digits, "
                "'.', '-' and '_' before the @, and no '+': it is added per message)"
            )
        if len(local) > BOUNCE_LOCAL_MAX:
            raise ValueError(
                f"the part before the @ may have at most {BOUNCE_LOCAL_MAX} characters "
                "(each message's token must fit in the 64 an address allows)"
            )
        return value

    @field_validator("bounce_imap_url")
    @classmethod
    def _check_imap_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parts = urlsplit(value.get_secret_value().strip())
        # Never repeat the URL in a message: it holds the password.
        if parts.scheme not in ("imap", "imaps"):
            raise ValueError("expected imaps://user:password@host:993/INBOX (or imap://)")
        try:
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            raise ValueError("the port is not a number") from None
        if not parts.hostname or not parts.username:
            raise ValueError("the URL must name a user and a host: imaps://user:password@host/")
        return value

    @field_validator("subscribe_limit", "login_limit")
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
        return tuple(
            _checked_address(part, display_name=False) for part in value.split(",") if part.strip()
        )

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_rate_limit_storage(cls, value: SecretStr) -> SecretStr:
        problem = rate_limit_storage_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _real_mail_needs_real_secrets(self) -> Settings:
        key = self.secret_key.get_secret_value()
        public = not _is_loopback(self.base_url)
        real_mail = self.transport != "outbox"
        if public or real_mail:
            # Links signed with a public or short key can be forged: anyone could
            # confirm, unsubscribe or look up any subscriber.
            why = (
                f"DIGESTMAIL_BASE_URL is not this machine ({self.base_url})"
                if public
                else f"DIGESTMAIL_TRANSPORT={self.transport}"
            )
            if key == DEV_SECRET_KEY:
                raise ValueError(
                    f"DIGESTMAIL_SECRET_KEY must be set to a long random value when {why}; "
                    "the built-in key is public"
                )
            if len(key) < SECRET_KEY_MIN:
                raise ValueError(
                    f"DIGESTMAIL_SECRET_KEY must be at least {SECRET_KEY_MIN} characters "
                    f"(a long random value) when {why}; it is {len(key)}"
                )
        if self.transport == "smtp" and self.smtp_url is None:
            raise ValueError("DIGESTMAIL_SMTP_URL is required when DIGESTMAIL_TRANSPORT=smtp")
        if self.transport == "sendgrid" and self.sendgrid_api_key is None:
            raise ValueError("SENDGRID_API_KEY is required when DIGESTMAIL_TRANSPORT=sendgrid")
        return self

    @property
    def smtp(self) -> SMTPConfig | None:
        """``DIGESTMAIL_SMTP_URL`` parsed (it was checked when the settings were read)."""
        return None if self.smtp_url is None else SMTPConfig.parse(self.smtp_url.get_secret_value())

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
