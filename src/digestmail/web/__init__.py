"""The web app: public pages (subscribe, confirm, unsubscribe), hooks, the staff admin.

``create_app`` builds everything from one ``Settings`` so tests can run several apps
side by side, each with its own database, outbox and rate-limit storage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from digestmail.config import Settings, get_settings
from digestmail.db import Database
from digestmail.web import (
    admin,
    archive,
    errors,
    feed,
    hooks,
    media,
    ops,
    printing,
    public,
    ratelimit,
)
from digestmail.web.pages import Pages


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            database.dispose()

    app = FastAPI(
        title=settings.publication,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.pages = Pages(settings)
    # Counted in DIGESTMAIL_RATE_LIMIT_STORAGE: per process by default, or shared by
    # every web process through Redis.
    strategy = ratelimit.strategy_for(settings)
    app.state.subscribe_limiter = ratelimit.subscribe_limiter(settings, strategy)
    app.state.login_limiter = ratelimit.login_limiter(settings, strategy)

    @app.middleware("http")
    async def _security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        # Confirm and unsubscribe URLs carry tokens: never leak them in a Referer.
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    # Anything a route did not answer itself: the error page, the traceback in the log.
    app.add_exception_handler(Exception, errors.server_error)
    app.include_router(public.router)
    app.include_router(hooks.router)
    app.include_router(ops.router)
    app.include_router(archive.router)
    app.include_router(media.router)
    app.include_router(feed.router)
    app.include_router(printing.router)
    admin.install(app, settings, database)
    return app
