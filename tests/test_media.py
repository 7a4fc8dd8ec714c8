"""The media folder: which names are pictures we serve, and storing files safely."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.config import Settings
from digestmail.media import (
    MAX_BYTES,
    MediaError,
    MediaProblem,
    MediaStore,
    content_type,
    is_reference,
    media_name,
    picture_url,
    public_url,
)
from tests.conftest import EXAMPLE_HERO

JPEG = EXAMPLE_HERO.read_bytes()
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
GIF = b"GIF89a" + b"\0" * 32
WEBP = b"RIFF\x24\0\0\0WEBPVP8 " + b"\0" * 32

# Names built from the characters that matter: path separators, dots, spaces, letters.
_name_chars = st.sampled_from([*"aZ09._-/\\ %:~", "..", "media/", "é", "\0", "\n"])
names = st.one_of(
    st.text(max_size=40),
    st.lists(_name_chars, max_size=12).map("".join),
    st.tuples(
        st.lists(_name_chars, max_size=8).map("".join),
        st.sampled_from([".jpg", ".JPEG", ".png", ".gif", ".webp", ".svg", ".html", ""]),
    ).map("".join),
)


@given(names)
@settings(max_examples=200, deadline=None)
def test_a_name_is_one_picture_inside_the_folder_or_refused_with_a_reason(name: str) -> None:
    folder = Path("/srv/media")
    try:
        checked = media_name(name)
    except MediaError as exc:
        assert exc.name == name and exc.problem in MediaProblem and exc.reason
        return
    # Nothing escapes: the name is one entry of the folder, never hidden, never a page.
    assert "/" not in checked and "\\" not in checked and not checked.startswith(".")
    assert os.path.normpath(folder / checked) == str(folder / checked)
    assert (folder / checked).parent == folder
    assert content_type(checked).startswith("image/")
    # Nothing accepted is lost: the same file whichever way it is written.
    assert media_name(checked) == checked
    assert media_name(f"media/{checked}") == media_name(f"/media/{checked}") == checked


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", MediaProblem.EMPTY),
        ("media/", MediaProblem.EMPTY),
        ("../secret.jpg", MediaProblem.FOLDER),
        ("a/b.jpg", MediaProblem.FOLDER),
        ("..\\b.jpg", MediaProblem.FOLDER),
        (".hidden.jpg", MediaProblem.CHARACTERS),
        ("photo 1.jpg", MediaProblem.CHARACTERS),
        ("x" * 100 + ".jpg", MediaProblem.TOO_LONG),
        ("drawing.svg", MediaProblem.NOT_A_PICTURE),
        ("page.html", MediaProblem.NOT_A_PICTURE),
        ("noextension", MediaProblem.NOT_A_PICTURE),
    ],
)
def test_names_refused(name: str, problem: MediaProblem) -> None:
    with pytest.raises(MediaError) as caught:
        media_name(name)
    assert caught.value.problem is problem


def test_references_and_their_public_address() -> None:
    settings = Settings(base_url="https://digest.example.org/")
    assert is_reference("hero.jpg") and is_reference("media/hero.jpg")
    assert not is_reference("https://cdn.example.org/hero.jpg")
    assert not is_reference("//cdn.example.org/hero.jpg")
    assert public_url(settings, "media/vol-4.1.jpg") == (
        "https://digest.example.org/media/vol-4.1.jpg"
    )
    assert picture_url(settings, "hero.jpg") == "https://digest.example.org/media/hero.jpg"
    assert picture_url(settings, "https://cdn.example.org/a.jpg") == "https://cdn.example.org/a.jpg"


def test_store_writes_checked_pictures_and_never_overwrites_by_accident(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media")  # created on first store
    for name, data in (("a.jpg", JPEG), ("b.PNG", PNG), ("c.gif", GIF), ("d.webp", WEBP)):
        assert store.store(name, data) == name
        path = store.path(name)
        assert path is not None and path.read_bytes() == data
    with pytest.raises(MediaError) as caught:
        store.store("a.jpg", PNG.replace(b"PNG", b"JPG"))
    assert caught.value.problem is MediaProblem.CONTENT
    with pytest.raises(MediaError) as caught:
        store.store("a.jpg", JPEG[:100])
    assert caught.value.problem is MediaProblem.EXISTS
    # The very same picture again (an issue uploaded twice) is accepted, and changes nothing.
    before = (tmp_path / "media" / "a.jpg").stat().st_ino
    assert store.store("a.jpg", JPEG) == "a.jpg"
    assert (tmp_path / "media" / "a.jpg").stat().st_ino == before
    store.store("a.jpg", JPEG[:100], replace=True)
    assert (tmp_path / "media" / "a.jpg").read_bytes() == JPEG[:100]
    with pytest.raises(MediaError) as caught:
        store.store("big.jpg", b"\xff\xd8\xff" + b"\0" * MAX_BYTES)
    assert caught.value.problem is MediaProblem.TOO_LARGE
    # A page dressed as a picture is refused, and nothing half-written is left behind.
    with pytest.raises(MediaError):
        store.store("evil.jpg", b"<html><script>alert(1)</script></html>")
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [
        "a.jpg",
        "b.PNG",
        "c.gif",
        "d.webp",
    ]


def test_path_finds_only_regular_files_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    store = MediaStore(folder)
    store.store("hero.jpg", JPEG)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(JPEG)
    (folder / "escape.jpg").symlink_to(outside)
    (folder / "dir.jpg").mkdir()
    (folder / "page.html").write_text("<script></script>")
    assert store.path("hero.jpg") == (folder / "hero.jpg").resolve()
    assert store.path("media/hero.jpg") is not None
    for name in ("escape.jpg", "dir.jpg", "page.html", "../secret.jpg", "missing.jpg"):
        assert store.path(name) is None, name
    assert not MediaStore(tmp_path / "nowhere").exists("hero.jpg")


@given(
    name=st.one_of(names, st.sampled_from(["ok.jpg", "ok.png", "x-1_2.gif"])),
    data=st.sampled_from([JPEG[:64], PNG, GIF, WEBP, b"", b"<svg/>", b"GIF87"]),
)
@settings(max_examples=150, deadline=None)
def test_store_either_keeps_the_exact_bytes_inside_the_folder_or_refuses(
    tmp_path_factory: pytest.TempPathFactory, name: str, data: bytes
) -> None:
    folder = tmp_path_factory.mktemp("media")
    try:
        stored = MediaStore(folder).store(name, data)
    except MediaError as exc:
        assert exc.reason
        assert not any(folder.iterdir()), "a refused file left something behind"
        return
    assert [p.name for p in folder.iterdir()] == [stored]
    assert (folder / stored).read_bytes() == data
    assert set(stored) <= set(string.ascii_letters + string.digits + "._-")
