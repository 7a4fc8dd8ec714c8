"""``digestmail serve``: the web app under uvicorn, with the scheduler in the same process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import typer

from digestmail.cli.common import console, database, fail
from digestmail.config import DEV_SECRET_KEY, Settings, get_settings, is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)


def attach_scheduler(app: FastAPI, settings: Settings) -> None:
    """Run the scheduler in the app's process: started with the app, stopped with it
    (sends in progress finish their batch and are handed on)."""
    from digestmail.scheduling.runner import Scheduler

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        running = Scheduler(settings)
        running.start()
        try:
            async with inner(a):
                yield
        finally:
            await asyncio.to_thread(running.stop)

    app.router.lifespan_context = lifespan


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    no_scheduler: bool = typer.Option(
        False, "--no-scheduler", help="Do not run the scheduler in this process."
    ),
) -> None:
    """Serve the public pages and hooks (behind a TLS reverse proxy in production)."""
    import uvicorn

    from digestmail.web import create_app

    settings = get_settings()
    if not is_loopback(host) and settings.secret_key.get_secret_value() == DEV_SECRET_KEY:
        # Reachable from other machines with a public signing key: anyone could
        # forge confirm and unsubscribe links.
        raise fail(
            f"Refusing to listen on {host} with the built-in DIGESTMAIL_SECRET_KEY: "
            "set it to a long random value first.",
            2,
        )
    with database():
        pass  # reachable and initialised, or one line saying what to do, before listening
    app = create_app(settings)
    if not no_scheduler:
        attach_scheduler(app, settings)
    base = f"http://{host}:{port}"
    console.print(f"Subscribe form:  {base}/subscribe")
    console.print(f"Archive:         {base}/archive")
    console.print(f"Health check:    {base}/healthz")
    console.print(f"Staff admin:     {base}/admin")
    if settings.transport == "outbox":
        console.print(f"Outbox:          {base}/admin/outbox (after signing in)")
    console.print(f"Links in emails point to {settings.base_url}")
    # proxy_headers: behind nginx on this machine, X-Forwarded-For gives the client's
    # real address (rate limits, consent records); only 127.0.0.1 is trusted for it.
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        log_level=settings.log_level.lower(),
    )
