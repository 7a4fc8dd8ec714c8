"""The media folder: pictures the web app serves under ``/media/``, for emails and pages.

An issue's hero picture may be a file here instead of a full web address: its
``hero.url`` is then a bare file name (``vol-4.1-hero.jpg``) or ``media/NAME``, and
the renderer turns it into ``DIGESTMAIL_BASE_URL/media/NAME``, so the picture in the
email loads wherever the site is reachable.

The folder is flat and holds pictures only. Names are a closed, boring alphabet
(letters, digits, ``.``, ``-``, ``_``) with a picture's extension, so a name can never
climb out of the folder, hide as a dot-file, or be served as a page (no ``.html``, no
``.svg``, which can carry scripts). ``MediaStore.store`` is the one way files get in:
it checks the name, checks that the bytes are the picture the extension says, and
writes atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from digestmail.config import LightSettings, Settings


URL_PREFIX = "/media/"

# Extension -> content type. Only pictures every mail program shows.
CONTENT_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

# How each content type's bytes begin (a file whose bytes disagree is refused).
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and b"WEBP" at offset 8, checked below
}

MAX_NAME = 100
MAX_BYTES = 10 * 1024 * 1024  # a hero picture for email should be far smaller

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class MediaProblem(StrEnum):
    """Why a name or a file is refused."""

    EMPTY = "empty"
    FOLDER = "folder"  # names a sub-folder or a path elsewhere
    CHARACTERS = "characters"
    TOO_LONG = "too-long"
    NOT_A_PICTURE = "not-a-picture"  # extension not in CONTENT_TYPES
    CONTENT = "content"  # the bytes are not the picture the extension says
    TOO_LARGE = "too-large"
    EXISTS = "exists"


_REASONS: dict[MediaProblem, str] = {
    MediaProblem.EMPTY: "no file name",
    MediaProblem.FOLDER: "the media folder has no sub-folders; give the file name alone",
    MediaProblem.CHARACTERS: (
        "use only letters, digits, '.', '-' and '_' in the file name, starting with a "
        "letter or digit"
    ),
    MediaProblem.TOO_LONG: f"the file name is longer than {MAX_NAME} characters",
    MediaProblem.NOT_A_PICTURE: (
        "only pictures can be served: the name must end in " + ", ".join(sorted(CONTENT_TYPES))
    ),
    MediaProblem.CONTENT: "the file's contents are not the picture its name says",
    MediaProblem.TOO_LARGE: f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB",
    MediaProblem.EXISTS: "a file of that name is already in the media folder",
}


class MediaError(ValueError):
    """A media name or file refused: ``name`` as given, ``problem`` says why."""

    def __init__(self, name: str, problem: MediaProblem) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name!r}: {_REASONS[problem]}")

    @property
    def reason(self) -> str:
        return _REASONS[self.problem]


def is_reference(url: str) -> bool:
    """True when ``url`` is not a web address and so names a file in the media folder."""
    parts = urlsplit(url.strip())
    return not parts.scheme and not parts.netloc


def media_name(reference: str) -> str:
    """The file name a reference means: ``NAME``, ``media/NAME`` or ``/media/NAME``.

    Raises ``MediaError`` for anything that is not one plain picture name in the folder.
    """
    text = reference.strip()
    for prefix in (URL_PREFIX, URL_PREFIX.lstrip("/")):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if not text:
        raise MediaError(reference, MediaProblem.EMPTY)
    if "/" in text or "\\" in text:
        raise MediaError(reference, MediaProblem.FOLDER)
    if not _NAME_RE.match(text):
        raise MediaError(reference, MediaProblem.CHARACTERS)
    if len(text) > MAX_NAME:
        raise MediaError(reference, MediaProblem.TOO_LONG)
    if Path(text).suffix.lower() not in CONTENT_TYPES:
        raise MediaError(reference, MediaProblem.NOT_A_PICTURE)
    return text


def content_type(name: str) -> str:
    """The content type of a checked name (``media_name``'s answer)."""
    return CONTENT_TYPES[Path(name).suffix.lower()]


def public_url(settings: Settings, name: str) -> str:
    """Where the web app serves the file: ``DIGESTMAIL_BASE_URL/media/NAME``."""
    return f"{settings.base_url}{URL_PREFIX}{quote(media_name(name))}"


def picture_url(settings: Settings, url: str) -> str:
    """An issue's picture address as the email needs it: full web addresses unchanged,
    media references made absolute with the base URL."""
    return public_url(settings, url) if is_reference(url) else url


def _looks_like(content: str, data: bytes) -> bool:
    if not data.startswith(_SIGNATURES[content]):
        return False
    return content != "image/webp" or data[8:12] == b"WEBP"


@dataclass(frozen=True)
class MediaStore:
    """The media folder (``DIGESTMAIL_MEDIA_DIR``); it need not exist until a file is stored."""

    folder: Path

    @classmethod
    def of(cls, settings: Settings | LightSettings) -> MediaStore:
        return cls(Path(settings.media_dir))

    def path(self, reference: str) -> Path | None:
        """The file a reference names, if it is a regular file inside the folder, else None.

        A symbolic link that leads out of the folder counts as missing, so the web app
        never serves a file from elsewhere on the machine.
        """
        try:
            name = media_name(reference)
        except MediaError:
            return None
        root = self.folder.resolve()
        candidate = (root / name).resolve()
        if candidate.parent != root or not candidate.is_file():
            return None
        return candidate

    def exists(self, reference: str) -> bool:
        return self.path(reference) is not None

    def store(self, name: str, data: bytes, *, replace: bool = False) -> str:
        """Write a picture into the folder; returns its checked name.

        Refuses (``MediaError``) a bad name, bytes that are not the picture the name
        says, more than ``MAX_BYTES``, and an existing name unless ``replace`` (storing
        the very same bytes again is accepted, and changes nothing). The file
        appears whole or not at all (written aside, then renamed).
        """
        checked = media_name(name)
        if len(data) > MAX_BYTES:
            raise MediaError(name, MediaProblem.TOO_LARGE)
        if not _looks_like(content_type(checked), data):
            raise MediaError(name, MediaProblem.CONTENT)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / checked
        if target.exists() and not replace:
            if self.path(checked) is not None and target.read_bytes() == data:
                return checked  # the same picture again (an issue uploaded twice)
            raise MediaError(name, MediaProblem.EXISTS)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            if replace:
                os.replace(tmp, target)
            else:
                # link() fails if the name was taken meanwhile: never overwrite by accident.
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    raise MediaError(name, MediaProblem.EXISTS) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return checked
