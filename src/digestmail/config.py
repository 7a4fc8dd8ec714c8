"""Every setting the system reads, in one place, checked when it is read.

Values come from ``DIGESTMAIL_*`` environment variables (plus ``SENDGRID_API_KEY``);
nothing else in the package reads the environment, so the README's table and this
class cannot drift apart unnoticed (``tests/test_config.py`` checks that). A value
that cannot work is refused here, naming its variable (``problems``), rather than
when the first message is sent or the server starts.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

Transport = Literal["outbox", "smtp", "sendgrid"]

# Used only when DIGESTMAIL_SECRET_KEY is unset: fine on a laptop with the outbox,
# refused for any transport that sends real mail (links signed with a public key
# could be forged to unsubscribe anyone).
DEV_SECRET_KEY = "digestmail-development-key-change-me"
# Whenever the built-in key would be refused, a key shorter than this is too: 32
# random characters are at least 128 bits however they are drawn (hex digits give 4
# bits each), beyond guessing for the life of the list.
SECRET_KEY_MIN = 32

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_LOCAL_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
# A bounce address's local part leaves room for "+" and a message's token (VERP).
BOUNCE_LOCAL_MAX = 24


def webhook_key_text(value: str) -> str:
    """The Event Webhook verification key as SendGrid shows it (base64 of the DER public
    key), checked to be an ECDSA P-256 key; a pasted PEM block is accepted too.

    Raises ``ValueError`` naming what is wrong, never repeating the value.
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    lines = [line.strip() for line in value.strip().splitlines()]
    text = "".join(line for line in lines if line and not line.startswith("-----"))
    try:
        der = base64.b64decode(text, validate=True)
        key = load_der_public_key(der)
    except (ValueError, binascii.Error, TypeError):
        raise ValueError(
            "not a verification key as SendGrid shows it (base64 text of a public key)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 key, which is what SendGrid signs events with")
    return text


# Values that end up in headers or one-line texts: a control character would break
# the header or start a new one.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Settings whose values are secrets (or hold one, like a URL's password): a report of
# a bad value never repeats them.
_SECRET_FIELDS = frozenset(
    {"secret_key", "smtp_url", "sendgrid_api_key", "sendgrid_webhook_key", "inbound_token"}
    | {"database_url", "rate_limit_storage", "bounce_imap_url"}
)

# "dialect[+driver]://": what a database URL says about which database it is.
_DATABASE_SCHEME = re.compile(r"^(?P<dialect>\w+)(?:\+(?P<driver>\w+))?://")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SMTPConfig:
    """Where and how to connect, parsed from ``DIGESTMAIL_SMTP_URL``."""

    host: str
    port: int
    implicit_tls: bool = False  # smtps://
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    local_hostname: str | None = None

    @classmethod
    def parse(cls, url: str) -> SMTPConfig:
        """``smtp://[user:pass@]host[:port][?starttls=true&helo=NAME]`` or ``smtps://…``.

        Credentials are percent-decoded, so a password may hold ``@`` as ``%40``.
        Errors never repeat the URL: it holds the password.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("names no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "helo"}
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
        implicit = parts.scheme == "smtps"
        port = port or (465 if implicit else 25)
        starttls_opt = query.get("starttls", "").lower()
        if starttls_opt in _TRUE:
            starttls = True
        elif starttls_opt in _FALSE or not starttls_opt:
            # Port 587 is the submission port: it means STARTTLS unless told otherwise.
            starttls = port == 587 and not starttls_opt and not implicit
        else:
            raise ValueError("starttls must be true or false")
        if implicit and starttls:
            raise ValueError("smtps:// is already TLS; drop starttls")
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=implicit,
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            local_hostname=query.get("helo") or None,
        )

    def redacted(self) -> str:
        """The URL for logs and messages: never the password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        tls = "?starttls=true" if self.starttls else ""
        return f"{scheme}://{user}{self.host}:{self.port}{tls}"


def _checked_address(value: str, *, display_name: bool) -> str:
    """An address mail can be sent from or to (no SMTPUTF8), or ``ValueError`` saying why.

    With ``display_name``, ``Name <address>`` is accepted too: exactly one address, as
    the message builder will fold it.
    """
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if _CONTROL_RE.search(value):
        raise ValueError("contains a line break or another control character")
    if display_name:
        try:
            header = email.policy.SMTP.header_factory("From", value)
            addresses = header.addresses
        except Exception:  # the standard library's parser has IndexErrors of its own
            addresses, header = (), None
        if header is None or header.defects or len(addresses) != 1:
            raise ValueError(
                f"{value!r} is not one email address such as 'Digest <digest@example.org>'"
            )
        spec = str(addresses[0].addr_spec)
    else:
        spec = value
    from email_validator import EmailNotValidError, validate_email  # 50 ms: only when set

    try:
        validate_email(spec, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{spec!r} is not a valid email address: {exc}") from None
    return value


def _web_address(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not a web address such as https://digest.example.org")
    return value.rstrip("/")


_PREFIX = "DIGESTMAIL_"
# Annotations whose environment value is JSON (as pydantic-settings reads them).
_JSON_KINDS = (list, tuple, set, frozenset, dict)


class NoDecode:
    """A field's marker (``Annotated[tuple[str, ...], NoDecode]``): its environment value
    goes to the field's validators as the text it is, not read as JSON (pydantic-settings'
    marker of the same name, which this module no longer imports)."""


def _is_json(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_is_json(arg) for arg in get_args(annotation) if arg is not type(None))
    kind = origin or annotation
    return isinstance(kind, type) and (issubclass(kind, _JSON_KINDS) or issubclass(kind, BaseModel))


def _environment(model: type[BaseModel]) -> dict[str, Any]:
    """The values the environment gives ``model``'s fields, by field name.

    What pydantic-settings' ``BaseSettings`` did for this class, which this replaces:
    importing pydantic-settings costs 0.1 s (asyncio, dotenv, cloud secret providers),
    a third of what ``digestmail issue check`` may take in all. A field is read from
    ``DIGESTMAIL_<NAME>`` or, when it has a ``validation_alias``, from the names that
    alias lists; names match whatever their case; a list, dict or model value is JSON.
    """
    environ = {name.upper(): value for name, value in os.environ.items()}
    found: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names = [str(choice) for choice in alias.choices]
        elif isinstance(alias, str):
            names = [alias]
        else:
            names = [_PREFIX + name]
        for variable_name in names:
            value = environ.get(variable_name.upper())
            if value is not None:
                decode = _is_json(info.annotation) and NoDecode not in info.metadata
                found[name] = json.loads(value) if decode else value
                break
    return found


class Settings(BaseModel):
    """Every setting, read from the environment when constructed; keyword arguments win
    over the environment (tests, and ``model_copy`` for variations)."""

    model_config = ConfigDict(
        # Keyword arguments name fields; the environment is read by ``_environment``.
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
        super().__init__(**{**_environment(type(self)), **values})

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
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

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


def rate_limit_storage_problem(uri: str) -> str | None:
    """Why ``uri`` is not a storage the ``limits`` package can use, or None if it is.

    The storage is built once here and thrown away: that checks the scheme and that its
    client library is installed, without connecting. The message names the scheme only,
    never the URI, which may carry a password.
    """
    scheme, sep, _rest = uri.partition("://")
    if uri == "memory://":
        return None  # the default, always available
    from limits.errors import ConfigurationError
    from limits.storage import storage_from_string

    examples = "memory://, redis://HOST:6379/0, rediss://…, memcached://HOST:11211, mongodb://…"
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        return f"expected a storage URI such as {examples}"
    try:
        storage_from_string(uri)
    except ConfigurationError as exc:
        if "unknown storage scheme" in str(exc):
            return f"unknown storage '{scheme}://'; use one of {examples}"
        return f"cannot use '{scheme}://': {str(exc).replace(uri, scheme + '://…')}"
    except (ValueError, TypeError) as exc:
        return f"the '{scheme}://' URI is not valid: {str(exc).replace(uri, scheme + '://…')}"
    return None


def variable(name: str) -> str:
    """The environment variable that sets a ``Settings`` field (given by name or alias)."""
    info = Settings.model_fields.get(name)
    if info is None:
        return name  # already the alias the value was read under (DIGESTMAIL_FROM)
    choices = getattr(info.validation_alias, "choices", None)
    return str(choices[0]) if choices else f"DIGESTMAIL_{name.upper()}"


def problems(exc: ValidationError) -> list[str]:
    """Each refusal of a ``Settings`` validation, as ``VARIABLE: what is wrong``.

    The value itself is repeated only for settings that are not secrets.
    """
    out = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a rule across settings: its message names them
            out.append(message)
            continue
        name = str(err["loc"][0])
        given: Any = err.get("input")
        shown = ""
        if name not in _SECRET_FIELDS and isinstance(given, str) and repr(given) not in message:
            shown = f" (got {given!r})"
        out.append(f"{variable(name)}: {message}{shown}")
    return out


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
