from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from digestmail.config import (
    SECRET_KEY_MIN,
    LightSettings,
    Settings,
    SettingsError,
    get_light_settings,
    problems,
)

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


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("DIGESTMAIL_BOUNCE_IMAP_URL", "https://user:hunter2@host/", "hunter2"),
        ("DIGESTMAIL_BOUNCE_IMAP_URL", "imaps://hunter2@:99x/", "hunter2"),
        ("DIGESTMAIL_SENDGRID_WEBHOOK_KEY", "bm90IGEga2V5", "bm90IGEga2V5"),
        ("DIGESTMAIL_BOUNCE_ADDRESS", "bounces+x@bounce.example.org", None),
        ("DIGESTMAIL_BOUNCE_ADDRESS", "a" * 30 + "@bounce.example.org", None),
        ("DIGESTMAIL_SOFT_BOUNCE_LIMIT", "0", None),
        ("DIGESTMAIL_SOFT_BOUNCE_DAYS", "-1", None),
    ],
)
def test_bad_bounce_settings_are_named_without_repeating_secrets(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, secret: str | None
) -> None:
    from digestmail.config import problems

    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    said = "; ".join(problems(raised.value))
    assert name in said
    if secret:
        assert secret not in said


def test_the_webhook_key_is_taken_as_sendgrid_shows_it_or_as_pem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.signing import Signer

    key = Signer().public_key
    monkeypatch.setenv("DIGESTMAIL_SENDGRID_WEBHOOK_KEY", key)
    assert Settings().sendgrid_webhook_key == SecretStr(key)
    pem = (
        "-----BEGIN PUBLIC KEY-----\n" + key[:40] + "\n" + key[40:] + "\n-----END PUBLIC KEY-----\n"
    )
    monkeypatch.setenv("DIGESTMAIL_SENDGRID_WEBHOOK_KEY", pem)
    assert Settings().sendgrid_webhook_key == SecretStr(key)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("redis:/localhost", "expected a storage URI such as memory://, redis://HOST:6379/0"),
        ("localhost:6379", "expected a storage URI such as"),
        ("bogus://:hunter2@host", "unknown storage 'bogus://'; use one of memory://"),
        ("redis://:hunter2@host:port/0", "the 'redis://' URI is not valid: Port could not"),
        ("memcached://host:11211", "cannot use 'memcached://': 'pymemcache' prerequisite"),
    ],
)
def test_rate_limit_storage_is_checked_without_showing_the_uri(
    monkeypatch: pytest.MonkeyPatch, uri: str, expected: str
) -> None:
    monkeypatch.setenv("DIGESTMAIL_RATE_LIMIT_STORAGE", uri)
    with pytest.raises(ValidationError) as info:
        Settings()
    [error] = info.value.errors()
    assert error["loc"] == ("rate_limit_storage",)
    assert expected in error["msg"]
    assert "hunter2" not in str(info.value) and "hunter2" not in error["msg"]


@pytest.mark.parametrize(
    "uri", ["memory://", "redis://127.0.0.1:6379/0", "rediss://:pw@redis.internal:6380/2"]
)
def test_rate_limit_storage_accepts_what_limits_supports(
    monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    monkeypatch.setenv("DIGESTMAIL_RATE_LIMIT_STORAGE", uri)
    stored = Settings().rate_limit_storage
    assert stored.get_secret_value() == uri and uri not in repr(Settings())


def test_the_command_names_a_bad_rate_limit_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    exe = Path(sys.executable).parent / "digestmail"
    monkeypatch.setenv("DIGESTMAIL_RATE_LIMIT_STORAGE", "bogus://:hunter2@host")
    done = subprocess.run([str(exe), "init"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "DIGESTMAIL_RATE_LIMIT_STORAGE: unknown storage 'bogus://'" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr


# --- every setting is checked when it is read, and the report names its variable ---------


def _problems(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    return problems(info.value)


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("DIGESTMAIL_LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO, WARNING, ERROR"),
        ("DIGESTMAIL_SMTP_URL", "http://x", "must start with smtp:// or smtps://"),
        ("DIGESTMAIL_SENDGRID_TIMEOUT", "-1", "greater than 0"),
        ("DIGESTMAIL_SMTP_TIMEOUT", "0", "greater than 0"),
        ("DIGESTMAIL_FROM", "garbage", "is not one email address"),
        ("DIGESTMAIL_FROM", "A <a@example.org>, B <b@example.org>", "is not one email address"),
        ("DIGESTMAIL_FROM", "Digest <digest@example.org>\r\nBcc: x@evil.example", "line break"),
        ("DIGESTMAIL_REPLY_TO", "x@", "is not one email address"),
        ("DIGESTMAIL_CONTACT_ADDRESS", "Desk <desk@example.org>", "not permitted"),
        ("DIGESTMAIL_CONTACT_ADDRESS", "nobody", "is not a valid email address"),
        ("DIGESTMAIL_DATABASE_URL", "garbage", "is not a database URL"),
        ("DIGESTMAIL_DATABASE_URL", "", "is empty"),
        ("DIGESTMAIL_DATABASE_URL", "mysql://u:p@db/x", "names 'mysql'"),
        ("DIGESTMAIL_DATABASE_URL", "postgresql+asyncpg://u:p@db/x", "the databases supported"),
        ("DIGESTMAIL_BASE_URL", "digest.example.org", "is not a web address"),
        ("DIGESTMAIL_SENDGRID_API_HOST", "ftp://api.example", "is not a web address"),
        ("DIGESTMAIL_PUBLICATION", "Digest\nBcc: x", "line break"),
        ("DIGESTMAIL_TEMPLATES_DIR", "/nowhere/templates", "is not a templates folder"),
        ("DIGESTMAIL_BATCH_SIZE", "many", "valid integer"),
    ],
)
def test_a_bad_value_is_refused_when_read_in_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    (line,) = _problems(monkeypatch, **{name: value})
    assert line.startswith(f"{name}: ") and said in line
    assert "\n" not in line.rstrip("\n").replace(repr(value), "")


# --- the light settings: a few, read without the model, exactly as the model reads them --


def test_light_settings_have_the_defaults_and_values_of_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = [setting.name for setting in fields(LightSettings)]
    assert names, "no light settings"
    assert {n: getattr(LightSettings(), n) for n in names} == {
        n: Settings.model_fields[n].default for n in names
    }
    monkeypatch.setenv("DIGESTMAIL_LOG_LEVEL", " debug ")
    monkeypatch.setenv("DIGESTMAIL_MEDIA_DIR", str(tmp_path / "pictures"))
    light, full = get_light_settings(), Settings()
    assert {n: getattr(light, n) for n in names} == {n: getattr(full, n) for n in names}
    assert (light.log_level, light.media_dir) == ("DEBUG", tmp_path / "pictures")


def test_a_bad_light_setting_is_refused_in_the_words_of_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingsError) as light:
        monkeypatch.setenv("DIGESTMAIL_LOG_LEVEL", "LOUD")
        get_light_settings()
    assert light.value.problems == _problems(monkeypatch)
    assert light.value.problems[0].startswith("DIGESTMAIL_LOG_LEVEL: must be one of")


def test_the_light_settings_leave_the_others_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGESTMAIL_FROM", "garbage")
    assert get_light_settings().log_level == "INFO"
    assert _problems(monkeypatch)[0].startswith("DIGESTMAIL_FROM: ")


def test_a_bad_secret_value_is_never_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    (line,) = _problems(monkeypatch, DIGESTMAIL_SMTP_URL="smtp://u:hunter2@mx?tls=1")
    assert line.startswith("DIGESTMAIL_SMTP_URL: unknown option(s) tls") and "hunter2" not in line
    monkeypatch.delenv("DIGESTMAIL_SMTP_URL")
    (line,) = _problems(monkeypatch, DIGESTMAIL_DATABASE_URL="mysql://u:hunter2@db/x")
    assert "hunter2" not in line


def test_an_outbox_folder_that_is_a_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "outbox-file").write_text("not a folder")
    (line,) = _problems(monkeypatch, DIGESTMAIL_OUTBOX_DIR=str(tmp_path / "outbox-file"))
    assert line.startswith("DIGESTMAIL_OUTBOX_DIR: ") and "is a file, not a folder" in line


def test_values_are_read_in_the_form_the_rest_of_the_system_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGESTMAIL_LOG_LEVEL", "debug")
    monkeypatch.setenv("DIGESTMAIL_DATABASE_URL", "postgresql://digest:pw@db.internal/digest")
    monkeypatch.setenv("DIGESTMAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("DIGESTMAIL_SMTP_URL", "smtps://u:p%40ss@mx.example.org")
    s = Settings()
    assert s.log_level == "DEBUG"
    assert s.database_url == "postgresql+psycopg://digest:pw@db.internal/digest"
    assert s.smtp is not None and (s.smtp.port, s.smtp.password) == (465, "p@ss")


@pytest.mark.parametrize("key", ["", "x", "k" * (SECRET_KEY_MIN - 1)])
@pytest.mark.parametrize(
    "where",
    [
        {"DIGESTMAIL_BASE_URL": "https://digest.example.org"},
        {"DIGESTMAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.test"},
    ],
)
def test_a_secret_key_too_short_to_protect_links_is_refused_where_the_built_in_one_is(
    monkeypatch: pytest.MonkeyPatch, key: str, where: dict[str, str]
) -> None:
    (line,) = _problems(monkeypatch, DIGESTMAIL_SECRET_KEY=key, **where)
    assert f"DIGESTMAIL_SECRET_KEY must be at least {SECRET_KEY_MIN} characters" in line
    assert f"it is {len(key)}" in line and f"'{key}'" not in line  # its length, never itself
    monkeypatch.setenv("DIGESTMAIL_SECRET_KEY", "k" * SECRET_KEY_MIN)
    assert Settings().secret_key.get_secret_value() == "k" * SECRET_KEY_MIN


def test_a_short_secret_key_is_fine_on_a_laptop_with_the_outbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGESTMAIL_SECRET_KEY", "dev")
    assert Settings().transport == "outbox"


def test_scheduling_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.timezone == "UTC" and s.staff_emails == () and s.scheduler_sync == 2.0
    monkeypatch.setenv("DIGESTMAIL_TIMEZONE", "America/New_York")
    monkeypatch.setenv("DIGESTMAIL_STAFF_EMAILS", " editor@example.org,,Ops@Example.ORG ")
    s = Settings()
    assert s.timezone == "America/New_York"
    assert s.staff_emails == ("editor@example.org", "Ops@Example.ORG")
    for name, value, said in (
        ("DIGESTMAIL_TIMEZONE", "Eastern Time", "unknown time zone 'Eastern Time'"),
        ("DIGESTMAIL_TIMEZONE", "../../etc/passwd", "unknown time zone"),
        ("DIGESTMAIL_STAFF_EMAILS", "editor@example.org, ops", "'ops' is not a valid email"),
        ("DIGESTMAIL_STAFF_EMAILS", "Desk <desk@example.org>", "not permitted"),
    ):
        (line,) = _problems(monkeypatch, **{name: value})
        assert line.startswith(f"{name}: ") and said in line
        monkeypatch.delenv(name)
