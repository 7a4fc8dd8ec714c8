from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from digestmail.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def _env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.add(str(choices[0]))
        else:
            names.add(f"DIGESTMAIL_{name.upper()}")
    return names


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), flags=re.M))
    assert _env_names() - documented == set(), "settings missing from README's table"
    assert documented - _env_names() == set(), "README documents settings that do not exist"


def test_defaults_are_the_one_machine_setup() -> None:
    s = Settings()
    assert s.database_url.startswith("sqlite:///")
    assert s.transport == "outbox"
    assert s.batch_size == 1000
    assert s.subscribe_limit == "5/minute"
    assert s.sender_lease == 30
    assert s.misfire_grace == 6 * 3600


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGESTMAIL_TRANSPORT", "sendgrid")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
    monkeypatch.setenv("DIGESTMAIL_FROM", "Digest <d@example.net>")
    monkeypatch.setenv("DIGESTMAIL_BASE_URL", "https://digest.example.net/")
    s = Settings()
    assert s.transport == "sendgrid"
    assert s.sendgrid_api_key is not None
    assert s.sendgrid_api_key.get_secret_value() == "SG.test"
    assert "SG.test" not in repr(s)
    assert s.from_ == "Digest <d@example.net>"
    assert s.base_url == "https://digest.example.net"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIGESTMAIL_TRANSPORT", "carrier-pigeon"),
        ("DIGESTMAIL_BATCH_SIZE", "5000"),
        ("DIGESTMAIL_SUBSCRIBE_LIMIT", "lots"),
        ("DIGESTMAIL_SEND_RATE", "-1"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    field = name.removeprefix("DIGESTMAIL_").lower()
    assert field in str(info.value)


def test_real_transports_refuse_the_public_development_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DIGESTMAIL_SECRET_KEY")
    monkeypatch.setenv("DIGESTMAIL_TRANSPORT", "sendgrid")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
    with pytest.raises(ValidationError, match="DIGESTMAIL_SECRET_KEY must be set"):
        Settings()


@pytest.mark.parametrize(
    ("transport", "missing"), [("smtp", "DIGESTMAIL_SMTP_URL"), ("sendgrid", "SENDGRID_API_KEY")]
)
def test_real_transports_need_their_credentials(
    monkeypatch: pytest.MonkeyPatch, transport: str, missing: str
) -> None:
    monkeypatch.setenv("DIGESTMAIL_TRANSPORT", transport)
    with pytest.raises(ValidationError, match=missing):
        Settings()


def test_a_public_base_url_refuses_the_public_development_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DIGESTMAIL_SECRET_KEY")
    monkeypatch.setenv("DIGESTMAIL_BASE_URL", "https://digest.example.org")
    with pytest.raises(ValidationError, match="DIGESTMAIL_BASE_URL is not this machine"):
        Settings()
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        monkeypatch.setenv("DIGESTMAIL_BASE_URL", local)
        assert Settings().base_url == local


def test_replies_go_to_the_contact_address_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGESTMAIL_CONTACT_ADDRESS", "editors@example.net")
    assert Settings().effective_reply_to == "editors@example.net"
    monkeypatch.setenv("DIGESTMAIL_REPLY_TO", "Desk <desk@example.net>")
    assert Settings().effective_reply_to == "Desk <desk@example.net>"


def test_scheduling_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.timezone == "UTC" and s.staff_emails == () and s.scheduler_sync == 2.0
    monkeypatch.setenv("DIGESTMAIL_TIMEZONE", "America/New_York")
    monkeypatch.setenv("DIGESTMAIL_STAFF_EMAILS", " editor@example.org,,Ops@Example.ORG ")
    s = Settings()
    assert s.timezone == "America/New_York"
    assert s.staff_emails == ("editor@example.org", "Ops@example.org")
    for name, value, said in (
        ("DIGESTMAIL_TIMEZONE", "Eastern Time", "unknown time zone 'Eastern Time'"),
        ("DIGESTMAIL_TIMEZONE", "../../etc/passwd", "unknown time zone"),
        ("DIGESTMAIL_STAFF_EMAILS", "editor@example.org, ops", "'ops' is not an email address"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError) as info:
            Settings()
        assert name.removeprefix("DIGESTMAIL_").lower() in str(info.value)
        assert said in str(info.value)
        monkeypatch.delenv(name)
