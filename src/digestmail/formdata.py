"""HTML form posts read as bytes, without deciding on a character set.

Starlette decodes form fields for us, but falls back to Latin-1 when a field is not
UTF-8 (mojibake, stored as if it were what the person typed) and turns the whole
request into an error when a field it expected to be text is a file. Both callers here
need the bytes instead: the subscribe form refuses what is not UTF-8, and the inbound
mail hook decodes each field in the character set the sender named for it. Parsing
never raises: whatever cannot be read is named in ``problems``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Part:
    data: bytes
    filename: str | None = None  # set for a file upload
    content_type: str | None = None  # the part's own Content-Type, if it has one

    @property
    def charset(self) -> str | None:
        if not self.content_type:
            return None
        charset = parse_options_header(self.content_type)[1].get(b"charset")
        return charset.decode("latin-1") if charset else None


@dataclass
class Form:
    """The fields of a post: the first part of each wanted name, as sent."""

    fields: dict[str, Part] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def text(self, name: str) -> bytes | None:
        """A field's bytes if it is a plain field (not a file), else None."""
        part = self.fields.get(name)
        return part.data if part is not None and part.filename is None else None


def media_type(content_type: str) -> str:
    return parse_options_header(content_type)[0].decode("latin-1")


def is_form(content_type: str) -> bool:
    return media_type(content_type) in FORM_TYPES


def parse_form(content_type: str, body: bytes, wanted: Collection[str] | None = None) -> Form:
    """The fields named in ``wanted`` (all when None) of a form post; never raises."""
    kind, options = parse_options_header(content_type)
    form = Form()
    if kind == b"application/x-www-form-urlencoded":
        _urlencoded(body, wanted, form)
    elif kind == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            form.problems.append("the multipart form names no boundary")
        else:
            _multipart(boundary, body, wanted, form)
    else:
        form.problems.append(f"not a form post (Content-Type {kind.decode('latin-1')!r})")
    return form


def _urlencoded(body: bytes, wanted: Collection[str] | None, form: Form) -> None:
    for pair in body.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8", "replace")
        if (wanted is None or name in wanted) and name not in form.fields:
            form.fields[name] = Part(unquote_to_bytes(raw_value.replace(b"+", b" ")))


class _Collector:
    """Callbacks for python-multipart's streaming parser: keeps the wanted parts."""

    def __init__(self, wanted: Collection[str] | None, form: Form) -> None:
        self.wanted = wanted
        self.form = form
        self.headers: dict[bytes, bytes] = {}
        self.header_name = b""
        self.header_value = b""
        self.name: str | None = None
        self.filename: bytes | None = None
        self.chunks: list[bytes] = []

    def part_begin(self) -> None:
        self.headers, self.name, self.filename, self.chunks = {}, None, None, []

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value_(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers.setdefault(self.header_name.strip().lower(), self.header_value.strip())
        self.header_name, self.header_value = b"", b""

    def headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition.decode("latin-1"))
        name = options.get(b"name")
        if name is None:
            self.form.problems.append("a part of the form has no name")
            return
        decoded = name.decode("utf-8", "replace")
        if (self.wanted is None or decoded in self.wanted) and decoded not in self.form.fields:
            self.name = decoded
        self.filename = options.get(b"filename")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.name is not None:
            self.chunks.append(data[start:end])

    def part_end(self) -> None:
        if self.name is None:
            return
        content_type = self.headers.get(b"content-type")
        filename = self.filename
        self.form.fields[self.name] = Part(
            b"".join(self.chunks),
            filename=filename.decode("utf-8", "replace") if filename is not None else None,
            content_type=content_type.decode("latin-1") if content_type else None,
        )
        self.name = None


def _multipart(boundary: bytes, body: bytes, wanted: Collection[str] | None, form: Form) -> None:
    collector = _Collector(wanted, form)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": collector.part_begin,
                "on_header_field": collector.header_field,
                "on_header_value": collector.header_value_,
                "on_header_end": collector.header_end,
                "on_headers_finished": collector.headers_finished,
                "on_part_data": collector.part_data,
                "on_part_end": collector.part_end,
            },
        )
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several kinds for broken input
        form.problems.append(f"the multipart form is broken: {exc}")
        return
    if parser.state not in (MultipartState.END, MultipartState.BOUNDARY_PADDING):
        # Cut off: the part being read when the body ended is not in ``fields``.
        form.problems.append("the multipart form ends before its closing boundary")
