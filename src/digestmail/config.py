"""Every setting the system reads, in one place, checked when it is read.

Values come from ``DIGESTMAIL_*`` environment variables (plus ``SENDGRID_API_KEY``);
nothing else in the package reads the environment, so the README's table and the
settings cannot drift apart unnoticed (``tests/test_config.py`` checks that). A value
that cannot work is refused here, naming its variable (``problems``), rather than
when the first message is sent or the server starts.

``Settings`` (``get_settings``) is every setting, read and checked at once: a pydantic
model, in ``config_model.py`` and loaded when first named, because loading pydantic
takes 0.15 s. A command that needs only a few settings and must start at once reads
``LightSettings`` (``get_light_settings``) instead: those few, read and checked as
``Settings`` reads them, without pydantic; the other settings are then not read.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from digestmail.config_model import Settings as Settings

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
        import email.policy  # 8 ms: only when an address is set

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
    from pydantic import BaseModel  # loaded already: only a model's fields are asked about

    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_is_json(arg) for arg in get_args(annotation) if arg is not type(None))
    kind = origin or annotation
    return isinstance(kind, type) and (issubclass(kind, _JSON_KINDS) or issubclass(kind, BaseModel))


def _environ() -> dict[str, str]:
    """The environment, by upper-case name (names match whatever their case)."""
    return {name.upper(): value for name, value in os.environ.items()}


def environment_values(model: type[BaseModel]) -> dict[str, Any]:
    """The values the environment gives ``model``'s fields, by field name.

    What pydantic-settings' ``BaseSettings`` did for this class, which this replaces:
    importing pydantic-settings costs 0.1 s (asyncio, dotenv, cloud secret providers),
    a third of what ``digestmail issue check`` may take in all. A field is read from
    ``DIGESTMAIL_<NAME>`` or, when it has a ``validation_alias``, from the names that
    alias lists; names match whatever their case; a list, dict or model value is JSON.
    """
    from pydantic import AliasChoices

    environ = _environ()
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


def checked_log_level(value: str) -> str:
    """``DIGESTMAIL_LOG_LEVEL``'s text as a logging level's name."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def variable(name: str) -> str:
    """The environment variable that sets a ``Settings`` field (given by name or alias)."""
    from digestmail.config_model import Settings

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
        out.append(_problem(variable(name), name, message, err.get("input")))
    return out


def _problem(variable_name: str, name: str, message: str, given: Any) -> str:
    """``VARIABLE: what is wrong``, with the value given unless it is a secret."""
    shown = ""
    if name not in _SECRET_FIELDS and isinstance(given, str) and repr(given) not in message:
        shown = f" (got {given!r})"
    return f"{variable_name}: {message}{shown}"


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
    from digestmail.config_model import Settings

    return Settings()


@dataclass(frozen=True)
class LightSettings:
    """The few settings a command that works on files alone needs, read without pydantic.

    Each is read from the same variable, with the same default, and checked with the
    same words as ``Settings`` reads it (``tests/test_config.py`` compares them); the
    other settings are not read, so a bad value there is not reported.
    """

    log_level: str = "INFO"
    media_dir: Path = Path("media")


# How each light setting's text becomes its value (``ValueError`` saying why it cannot).
_LIGHT_READERS: dict[str, Callable[[str], Any]] = {
    "log_level": checked_log_level,
    "media_dir": Path,
}


class SettingsError(ValueError):
    """Light settings refused: ``problems`` worded as ``problems`` words a refusal of
    ``Settings`` (``VARIABLE: what is wrong``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@lru_cache(maxsize=1)
def get_light_settings() -> LightSettings:
    """The process-wide light settings, read once from the environment; ``SettingsError``
    if a value cannot work."""
    environ = _environ()
    found: dict[str, Any] = {}
    refused = []
    for setting in fields(LightSettings):
        name = _PREFIX + setting.name.upper()
        given = environ.get(name)
        if given is None:
            continue
        try:
            found[setting.name] = _LIGHT_READERS[setting.name](given)
        except ValueError as exc:
            refused.append(_problem(name, setting.name, str(exc), given))
    if refused:
        raise SettingsError(refused)
    return LightSettings(**found)


def reset_settings_cache() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
    get_light_settings.cache_clear()


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """``Settings``, loaded when first named (``from digestmail.config import Settings``)."""
        if name != "Settings":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from digestmail.config_model import Settings

        globals()["Settings"] = Settings
        return Settings
