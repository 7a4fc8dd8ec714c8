"""``/media/NAME``: the example's picture served to mail programs, and nothing else."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digestmail.config import Settings
from digestmail.content.source import load_issue
from digestmail.media import MediaStore
from digestmail.render import render_issue
from tests.conftest import EXAMPLE_HERO
from tests.liveserver import serve

# What a client can put in a header value: visible ASCII and inner spaces.
_HEADER_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@pytest.fixture
def live(sqlite_url: str, example_issue: Path) -> Iterator[tuple[httpx.Client, Settings]]:
    settings = Settings()
    with serve(settings) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client, settings


def test_the_picture_in_the_email_loads_from_the_site(
    live: tuple[httpx.Client, Settings], example_issue: Path
) -> None:
    client, settings = live
    # The email is rendered for a site at this server's address.
    site = settings.model_copy(update={"base_url": str(client.base_url).rstrip("/")})
    html = render_issue(load_issue(example_issue, media=MediaStore.of(site)), site).html
    [src] = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert src == f"{site.base_url}/media/vol-4.1-hero.jpg"

    answer = httpx.get(src, timeout=10)
    assert answer.status_code == 200
    assert answer.content == EXAMPLE_HERO.read_bytes()
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "public, max-age=86400"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["etag"] and answer.headers["last-modified"]

    head = client.head("/media/vol-4.1-hero.jpg")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(answer.content))
    again = client.get("/media/vol-4.1-hero.jpg", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    since = client.get(
        "/media/vol-4.1-hero.jpg", headers={"If-Modified-Since": answer.headers["last-modified"]}
    )
    assert since.status_code == 304
    changed = client.get("/media/vol-4.1-hero.jpg", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


def test_only_pictures_inside_the_folder_are_served(
    live: tuple[httpx.Client, Settings], tmp_path: Path
) -> None:
    client, settings = live
    folder = Path(settings.media_dir)
    (folder / "page.html").write_text("<script>alert(1)</script>")
    (folder / ".hidden.jpg").write_bytes(EXAMPLE_HERO.read_bytes())
    (tmp_path / "outside.jpg").write_bytes(EXAMPLE_HERO.read_bytes())
    (folder / "escape.jpg").symlink_to(tmp_path / "outside.jpg")
    for path in (
        "/media/page.html",
        "/media/.hidden.jpg",
        "/media/escape.jpg",
        "/media/missing.jpg",
        "/media/..%2Fsubscribers.db",
        "/media/..%2F..%2Fetc%2Fpasswd",
        "/media/%2e%2e%2foutside.jpg",
        "/media/sub%2Fvol-4.1-hero.jpg",
        "/media/",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert b"<script>" not in answer.content and b"SQLite" not in answer.content


@given(
    none_match=st.one_of(st.none(), st.text(alphabet=_HEADER_CHARS, max_size=60).map(str.strip)),
    since=st.one_of(
        st.none(),
        st.text(alphabet=_HEADER_CHARS, max_size=40).map(str.strip),
        st.sampled_from(["Mon, 01 Jan 99999 00:00:00 GMT", "Sun, 31 Dec 0001 23:59:59 +2359"]),
    ),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_conditional_headers_get_the_picture_or_not_modified(
    live: tuple[httpx.Client, Settings], none_match: str | None, since: str | None
) -> None:
    client, _ = live
    headers = {
        name: value
        for name, value in (("If-None-Match", none_match), ("If-Modified-Since", since))
        if value is not None
    }
    answer = client.get("/media/vol-4.1-hero.jpg", headers=headers)
    assert answer.status_code in (200, 304)
    if answer.status_code == 200:
        assert answer.content == EXAMPLE_HERO.read_bytes()
    else:
        assert answer.content == b"" and answer.headers["etag"]
