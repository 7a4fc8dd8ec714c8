"""``/issues/SLUG/print`` and ``/issues/SLUG/pdf``: a sent issue for paper, drafts never."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import add_issue
from tests.archive_helpers import publish
from tests.liveserver import serve


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    with serve(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def test_drafts_and_unknown_issues_are_not_printable(
    client: httpx.Client, settings: Settings, database: Database, example_issue: Path
) -> None:
    slug = add_issue(database, settings, example_issue, ready=True).slug
    for path in (f"/issues/{slug}/print", f"/issues/{slug}/pdf", "/issues/nope/print"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "Defense ministers" not in answer.text


def test_print_page_is_the_issue_as_a_document(
    client: httpx.Client, settings: Settings, database: Database, example_issue: Path
) -> None:
    slug = publish(database, settings, example_issue)
    answer = client.get(f"/issues/{slug}/print")
    assert answer.status_code == 200
    page = answer.text
    assert '<html lang="en" dir="ltr">' in page
    assert "<title>US-Japan Alliance Digest, Vol. 4.1: a new year of alliance work</title>" in page
    assert re.search(
        r"<h1>US-Japan Alliance Digest, Vol. 4.1: a new year of alliance work</h1>", page
    )
    assert "<li>Defense ministers set alliance priorities for 2025 in Tokyo talks</li>" in page
    assert '<a href="https://www.mod.go.jp/en/">joint statement</a>' in page
    assert f'<img src="{settings.base_url}/media/vol-4.1-hero.jpg"' in page
    assert "Image: Illustration drawn for this example issue" in page
    assert "@media print" in page and "@page" in page
    assert f'href="/issues/{slug}/pdf"' in page
    # No per-recipient placeholder leaks onto a page for everyone.
    assert "%%" not in page
    # The archive offers both formats next to each issue.
    archive = client.get("/archive").text
    assert f'href="/issues/{slug}/print"' in archive and f'href="/issues/{slug}/pdf"' in archive


def test_pdf_download_has_the_issue_text_and_its_picture(
    client: httpx.Client,
    settings: Settings,
    database: Database,
    example_issue: Path,
    weasyprint: None,
    artifacts_dir: Path,
) -> None:
    slug = publish(database, settings, example_issue)
    answer = client.get(f"/issues/{slug}/pdf")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == f'attachment; filename="{slug}.pdf"'
    assert answer.content.startswith(b"%PDF-")
    (artifacts_dir / f"{slug}.pdf").write_bytes(answer.content)

    pdf = PdfReader(io.BytesIO(answer.content))
    assert pdf.metadata is not None
    assert pdf.metadata.title == "US-Japan Alliance Digest, Vol. 4.1: a new year of alliance work"
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in pdf.pages)
    assert "US-Japan Alliance Digest, Vol. 4.1: a new year of alliance work" in text
    assert "Defense ministers set alliance priorities for 2025 in Tokyo talks" in text
    assert "Coast guards of the US and Japan hold joint search-and-rescue drill" in text
    # Links are printed with their address (which may wrap onto the next line).
    assert "joint statement (https://www.mod.go.jp/en/)" in text.replace("// ", "//")
    assert "Download PDF" not in text  # the screen-only links are not on paper
    # The hero picture came from the media folder (never fetched over the network).
    assert len({image.name for page in pdf.pages for image in page.images}) == 1
    box = pdf.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points


def test_pdf_of_an_issue_whose_picture_is_gone_still_works(
    client: httpx.Client,
    settings: Settings,
    database: Database,
    example_issue: Path,
    weasyprint: None,
) -> None:
    slug = publish(database, settings, example_issue)
    (Path(settings.media_dir) / "vol-4.1-hero.jpg").unlink()
    assert client.get(f"/issues/{slug}/print").status_code == 200
    answer = client.get(f"/issues/{slug}/pdf")
    assert answer.status_code == 200
    pdf = PdfReader(io.BytesIO(answer.content))
    assert not any(page.images for page in pdf.pages)
    assert "Defense ministers" in (pdf.pages[0].extract_text() or "")
