"""``GET /media/NAME``: the pictures of the media folder, for emails and pages.

Only what ``media.MediaStore.path`` accepts is served (a plain picture name, a regular
file inside the folder); anything else is a 404 that says nothing about the disk.
Mail programs and their image proxies fetch these often, so answers are cacheable
for a day and revalidate cheaply (ETag, Last-Modified, 304).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from digestmail.media import URL_PREFIX, MediaStore, content_type
from digestmail.web.deps import settings_of

router = APIRouter()

CACHE_CONTROL = "public, max-age=86400"


@router.api_route(URL_PREFIX + "{name}", methods=["GET", "HEAD"])
def media_file(request: Request, name: str) -> Response:
    path = MediaStore.of(settings_of(request)).path(name)
    if path is None:
        raise HTTPException(404, "No such picture")
    stat = path.stat()
    response = FileResponse(
        path,
        media_type=content_type(path.name),
        stat_result=stat,
        headers={
            "Cache-Control": CACHE_CONTROL,
            # Opened directly, a picture is never a document that could run anything.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
    if _not_modified(request, response.headers.get("etag", ""), stat.st_mtime):
        kept = ("etag", "last-modified", "cache-control")
        return Response(status_code=304, headers={k: response.headers[k] for k in kept})
    return response


def _not_modified(request: Request, etag: str, mtime: float) -> bool:
    """RFC 9110: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return int(mtime) <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False
