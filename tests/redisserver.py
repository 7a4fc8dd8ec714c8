"""A throw-away Redis server on 127.0.0.1 for the tests that share rate limits.

Debian's ``redis-server`` with no persistence, in a folder of its own, on a free port;
stopped (and its folder removed by pytest) when the test is done.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import free_port, stop


class RedisUnavailable(RuntimeError):
    pass


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Yield ``redis://127.0.0.1:PORT/0`` of a running server; stop it on exit."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    process = subprocess.Popen(
        [
            exe,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    raise RedisUnavailable(f"redis-server did not start: {err or exc}") from exc
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        stop(process)
