"""The staff admin at ``/admin``: what staff do on the command line, in a browser.

``install`` adds it to the app: the sign-in pages, the pages behind the sign-in
(the dashboard, issues, the schedule, campaigns, subscribers, the outbox), their CSRF
checks and security headers (``security.AdminGuard``), the stylesheets and script under
``/static/``, and the thread that sends campaigns started here (``runner.CampaignRunner``).

Layers point down: each action is one call of the functions the CLI uses; the pages
add words, not rules.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.web.admin import auth, campaigns, home, issues, outbox, schedule, subscribers
from digestmail.web.admin.common import LoginRequired, page
from digestmail.web.admin.runner import CampaignRunner
from digestmail.web.admin.security import AdminGuard
from digestmail.web.deps import pages_of

STATIC = Path(__file__).resolve().parent.parent.parent / "static"


def install(app: FastAPI, settings: Settings, database: Database) -> None:
    app.state.campaign_runner = CampaignRunner(database, settings)
    app.add_middleware(AdminGuard, settings=settings)
    app.add_exception_handler(LoginRequired, _login_required)
    for router in (
        auth.router,
        home.router,
        issues.router,
        schedule.router,
        campaigns.router,
        subscribers.router,
        outbox.router,
    ):
        app.include_router(router)
    app.add_api_route("/static/site.css", _site_css, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


async def _login_required(request: Request, _exc: Exception) -> Response:
    """Pages send the browser to the sign-in page and back; anything else gets 401."""
    if request.method in ("GET", "HEAD") and not request.url.path.endswith(".json"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = page(request, "login_needed.html", status_code=303)
        response.headers["Location"] = f"/admin/login?next={quote(target, safe='/')}"
        return response
    if request.url.path.endswith(".json"):
        return JSONResponse({"error": "sign in first"}, status_code=401)
    return page(request, "login_needed.html", status_code=401)


def _site_css(request: Request) -> Response:
    """The site's stylesheet (``templates/web/_site.css``) for pages that allow no inline style."""
    body = pages_of(request).templates.get_template("_site.css").render()
    return Response(body, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})
