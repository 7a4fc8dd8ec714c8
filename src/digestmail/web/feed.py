"""``GET /feed.atom``: the archive for feed readers (see ``digestmail.feed``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from digestmail.feed import FEED_PATH, FEED_TYPE, atom
from digestmail.web.deps import database_of, settings_of

router = APIRouter()


@router.get(FEED_PATH)
def atom_feed(request: Request) -> Response:
    body = atom(database_of(request), settings_of(request))
    # Readers poll; a quarter of an hour late is fine for a fortnightly digest.
    return Response(
        body,
        media_type=f"{FEED_TYPE}; charset=utf-8",
        headers={"Cache-Control": "public, max-age=900"},
    )
