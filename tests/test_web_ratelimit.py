"""The subscribe rate limit, counted in DIGESTMAIL_RATE_LIMIT_STORAGE.

Two real web processes (``digestmail serve``) sharing one Redis count one limit
between them; memory storage counts per process; a storage that is down lets the
public form through and says so in the log.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from digestmail.config import Settings
from digestmail.web.ratelimit import login_limiter, strategy_for
from tests.liveserver import serve
from tests.processes import free_port, stop


@contextmanager
def _serve_process(env: dict[str, str], log: Path) -> Iterator[str]:
    """``digestmail serve`` as operators start it, on a free port; stopped on exit."""
    port = free_port()
    exe = Path(sys.executable).parent / "digestmail"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--no-scheduler"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"digestmail serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        stop(process)


def _subscribe(url: str, n: int) -> int:
    answer = httpx.post(f"{url}/subscribe", data={"email": f"reader{n}@example.org"}, timeout=30)
    return answer.status_code


def test_two_web_processes_share_one_limit_through_redis(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DIGESTMAIL_RATE_LIMIT_STORAGE": redis_url,
        "DIGESTMAIL_SUBSCRIBE_LIMIT": "4/minute",
    }
    with ExitStack() as stack:
        first = stack.enter_context(_serve_process(env, tmp_path / "first.log"))
        second = stack.enter_context(_serve_process(env, tmp_path / "second.log"))
        # Alternating between the processes: four in all are let through, then both refuse.
        codes = [_subscribe(url, i) for i, url in enumerate([first, second] * 3)]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_memory_storage_counts_in_each_process(sqlite_url: str) -> None:
    settings = Settings(subscribe_limit="2/minute")
    assert settings.rate_limit_storage.get_secret_value() == "memory://"
    with serve(settings) as first, serve(settings) as second:
        codes = [_subscribe(url, i) for i, url in enumerate([first, first, first, second])]
    assert codes == [200, 200, 429, 200]


def test_a_storage_that_is_down_lets_the_form_through_and_logs_it(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"redis://:a-password@127.0.0.1:{free_port()}/0"
    settings = Settings(rate_limit_storage=closed, subscribe_limit="1/minute")
    caplog.set_level(logging.ERROR, logger="digestmail.web.ratelimit")
    with serve(settings) as url:
        codes = [_subscribe(url, i) for i in range(2)]
    assert codes == [200, 200]
    [first, *_] = [r for r in caplog.records if r.name == "digestmail.web.ratelimit"]
    message = first.getMessage()
    assert "rate limit subscribe: storage unavailable" in message
    assert "allowing the request" in message
    assert "a-password" not in caplog.text


def test_the_login_limit_counts_failures_and_refuses_when_the_storage_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(login_limit="2/minute")
    limiter = login_limiter(settings, strategy_for(settings))
    assert limiter.allows("account", "a") and limiter.hit("account", "a")
    assert limiter.allows("account", "a")  # asking does not count
    assert limiter.hit("account", "a") and not limiter.allows("account", "a")
    assert limiter.allows("account", "b")
    down = Settings(rate_limit_storage=f"redis://127.0.0.1:{free_port()}/0")
    closed = login_limiter(down, strategy_for(down))
    caplog.set_level(logging.ERROR, logger="digestmail.web.ratelimit")
    assert not closed.allows("ip", "127.0.0.1")  # nobody signs in without a count
    assert "refusing the request" in caplog.text
