"""Shared fixtures: settings in a temporary directory, and real databases.

Every test that asks for ``db_url`` (or anything built on it) runs twice: once on a
real SQLite file and once on a real PostgreSQL server started for the session.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import Browser
from pydantic import SecretStr

from digestmail.config import Settings, reset_settings_cache
from digestmail.db import Database
from digestmail.migrate import upgrade
from tests.imapserver import DovecotUnavailable, ImapServer, dovecot
from tests.liveserver import serve
from tests.pgcluster import Cluster, PostgresUnavailable, start_cluster
from tests.redisserver import RedisUnavailable, redis_server
from tests.signing import Signer

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vol-4.1.md"
EXAMPLE_HERO = EXAMPLE.with_name("vol-4.1-hero.jpg")
SAMPLES = sorted((FIXTURES / "samples").glob("*.txt"))
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

_db_counter = itertools.count()

# Property tests: no deadline (the machine is shared and slow at times), no example
# database written into the tests' working directories; each test sets its own count.
hypothesis_settings.register_profile("digestmail", deadline=None, database=None)
hypothesis_settings.load_profile("digestmail")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts from the embedded defaults, in its own working directory."""
    for key in list(os.environ):
        if key.startswith("DIGESTMAIL_") or key == "SENDGRID_API_KEY":
            monkeypatch.delenv(key)
    monkeypatch.setenv("DIGESTMAIL_SECRET_KEY", "test-secret-key-not-for-production")
    monkeypatch.setenv("DIGESTMAIL_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("DIGESTMAIL_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("DIGESTMAIL_DATABASE_URL", f"sqlite:///{tmp_path / 'subscribers.db'}")
    monkeypatch.chdir(tmp_path)
    reset_settings_cache()
    yield
    reset_settings_cache()


@pytest.fixture
def example_issue(tmp_path: Path) -> Path:
    """The example issue, its picture in this test's media folder (where `make run` puts it)."""
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    shutil.copyfile(EXAMPLE_HERO, media / EXAMPLE_HERO.name)
    return EXAMPLE


CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling out to the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright; required in CI, skipped elsewhere if missing."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is required in CI (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def spamassassin() -> Path:
    """Debian's ``spamassassin`` with its shipped rules; required in CI, skipped elsewhere."""
    found = shutil.which("spamassassin")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is required in CI (apt-get install spamassassin)")
        pytest.skip("Debian's spamassassin is not installed")
    return Path(found)


@pytest.fixture(scope="session")
def weasyprint() -> None:
    """WeasyPrint with its system libraries (Pango); required in CI, skipped elsewhere."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"WeasyPrint must work in CI (see .ci/run): {exc}")
        pytest.skip(f"WeasyPrint cannot run here: {exc}")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test's own on 127.0.0.1; required in CI, skipped elsewhere."""
    try:
        with redis_server(tmp_path) as url:
            yield url
    except RedisUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# --- databases -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: Cluster) -> str:
    """A migrated database that each test's database is copied from."""
    admin = sa.create_engine(pg_cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE digestmail_template")
    admin.dispose()
    db = Database(pg_cluster.url("digestmail_template"))
    upgrade(db.engine)
    db.dispose()
    return "digestmail_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    db.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite file of this test's own, also set as DIGESTMAIL_DATABASE_URL."""
    path = tmp_path / "subscribers.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DIGESTMAIL_DATABASE_URL", url)
    reset_settings_cache()
    return url


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own, also set as DIGESTMAIL_DATABASE_URL."""
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    template: str = request.getfixturevalue("pg_template")
    name = f"t{os.getpid()}_{next(_db_counter)}"
    admin = sa.create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = cluster.url(name)
    monkeypatch.setenv("DIGESTMAIL_DATABASE_URL", url)
    reset_settings_cache()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database on each backend in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings as the process would read them, pointing at this test's database."""
    reset_settings_cache()
    return Settings()


# --- the inbound mail hook ----------------------------------------------------------

INBOUND_TOKEN = "inbound-secret-0123456789"


@pytest.fixture
def inbound_settings(settings: Settings) -> Settings:
    """Settings with the Inbound Parse hook open (its token set)."""
    return settings.model_copy(update={"inbound_token": SecretStr(INBOUND_TOKEN)})


@pytest.fixture
def inbound_client(inbound_settings: Settings) -> Iterator[httpx.Client]:
    """An HTTP client of the real app, served by uvicorn, with the hook open."""
    with serve(inbound_settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


# --- the Event Webhook --------------------------------------------------------------


@pytest.fixture(scope="session")
def webhook_signer() -> Signer:
    """A SECP256R1 key pair made for the test session; events are signed with it."""
    return Signer()


@pytest.fixture
def events_settings(settings: Settings, webhook_signer: Signer) -> Settings:
    """Settings whose Event Webhook key is the signer's public key."""
    return settings.model_copy(
        update={"sendgrid_webhook_key": SecretStr(webhook_signer.public_key)}
    )


@pytest.fixture
def events_client(events_settings: Settings) -> Iterator[httpx.Client]:
    """An HTTP client of the real app, served by uvicorn, with the Event Webhook's key set."""
    with serve(events_settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


# --- the bounce mailbox ---------------------------------------------------------------


@pytest.fixture(scope="session")
def imap_session() -> Iterator[ImapServer]:
    try:
        with dovecot() as server:
            yield server
    except DovecotUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Dovecot is required in CI (apt-get install dovecot-imapd): {exc}")
        pytest.skip(f"Dovecot not available: {exc}")


@pytest.fixture
def imap_server(imap_session: ImapServer) -> Iterator[ImapServer]:
    """A real IMAP server (Dovecot on 127.0.0.1) with an empty bounce mailbox."""
    imap_session.clear()
    yield imap_session
    imap_session.clear()
