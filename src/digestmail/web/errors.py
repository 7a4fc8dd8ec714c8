"""The last resort: an error no route expected ends in the site's error page, logged.

Routes answer every input they are given with a page of their own; this handler is
for bugs and outages. The traceback goes to the log under the route's pattern (never
its URL, whose tokens are credentials), and the person sees a page, not a stack.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response

from digestmail.web.deps import pages_of

log = logging.getLogger(__name__)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(no route)"


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, _route(request), exc_info=exc)
    try:
        return pages_of(request).render(request, "error.html", status_code=500)
    except Exception:
        log.exception("the error page itself could not be rendered")
        return PlainTextResponse("Something went wrong on our side.\n", status_code=500)
