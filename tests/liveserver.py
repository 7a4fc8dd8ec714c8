"""A real uvicorn server for the app, on a free loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from digestmail.cli.serve import attach_scheduler
from digestmail.config import Settings
from digestmail.web import create_app


@contextmanager
def serve(settings: Settings, *, scheduler: bool = False) -> Iterator[str]:
    """Yield the base URL of the running app; stop it on exit. ``scheduler``: with the
    scheduler in the same process, started and stopped with the app, as ``digestmail
    serve`` runs it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings)
    if scheduler:
        attach_scheduler(app, settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=True)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
