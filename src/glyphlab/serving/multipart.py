"""The file of a multipart upload, parsed in memory with python-multipart (the parser Starlette uses).

The server reads a request body whole, within its body limit, before the route runs. Starlette's form
machinery (``request.form()``) then copies each upload into a spooled temporary file and hops to a thread
for each of its writes, its seek, the route's read and the close: on a 2-core server that was about a
fifth of a small upload's CPU, for a body already in memory. This parses the same bytes with the same
parser and the same rules (a part needs a ``name``; at most ``max_files`` file parts and ``max_fields``
other parts; a non-file part at most ``max_part_size`` bytes) and hands back the one file's bytes.
"""

from __future__ import annotations

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header


class MultipartError(ValueError):
    """The multipart body cannot be parsed, or breaks a limit (the message says which)."""


class ExtraPartError(MultipartError):
    """A part other than the one file asked for, where ``max_fields`` is 0 (the server's routes: the published
    schema has only ``file``, as the JSON bodies take no unknown keys)."""


class _Part:
    __slots__ = ("disposition", "name", "is_file", "chunks", "size")

    def __init__(self) -> None:
        self.disposition = b""
        self.name = ""
        self.is_file = False
        self.chunks: list[bytes] = []
        self.size = 0


class _FileFinder:
    """The parser's callbacks: they track the current part, enforce the limits and keep the wanted file."""

    CALLBACKS = (
        "on_part_begin",
        "on_header_field",
        "on_header_value",
        "on_header_end",
        "on_headers_finished",
        "on_part_data",
        "on_part_end",
    )

    def __init__(self, field: str, max_files: int, max_fields: int, max_part_size: int) -> None:
        self.field, self.max_files, self.max_fields, self.max_part_size = field, max_files, max_fields, max_part_size
        self.found: bytes | None = None
        self.files = self.fields = 0
        self.part = _Part()
        self.header_name: list[bytes] = []
        self.header_value: list[bytes] = []

    def callbacks(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.CALLBACKS}

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name.append(data[start:end])

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value.append(data[start:end])

    def on_header_end(self) -> None:
        if b"".join(self.header_name).lower() == b"content-disposition":
            self.part.disposition = b"".join(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        part = self.part
        _, options = parse_options_header(part.disposition)
        if b"name" not in options:
            raise MultipartError('a part\'s Content-Disposition header has no "name"')
        part.name = options[b"name"].decode("utf-8", "replace")
        part.is_file = b"filename" in options
        if part.is_file:
            self.files += 1
            if self.files > self.max_files:
                raise MultipartError(f"too many files: at most {self.max_files} per request")
        else:
            self.fields += 1
            if self.max_fields == 0:
                raise ExtraPartError(part.name)
            if self.fields > self.max_fields:
                raise MultipartError(f"too many fields: at most {self.max_fields} per request")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        part.size += end - start
        if not part.is_file and part.size > self.max_part_size:
            raise MultipartError(f"a field is larger than {self.max_part_size:,} bytes")
        part.chunks.append(data[start:end])

    def on_part_end(self) -> None:
        if self.part.is_file and self.part.name == self.field and self.found is None:
            self.found = b"".join(self.part.chunks)


def upload_file(
    body: bytes,
    content_type: str,
    field: str = "file",
    *,
    max_files: int = 1,
    max_fields: int = 8,
    max_part_size: int = 1024 * 1024,
) -> bytes | None:
    """The bytes of the file part named ``field`` of a whole multipart body, or None when it has none.

    ``content_type`` is the request's Content-Type header (it carries the boundary). A part counts only
    once its closing boundary has been read, so a truncated body never yields a truncated image.
    Raises :class:`MultipartError` for a malformed body or a broken limit.
    """
    try:
        _, params = parse_options_header(content_type)
    except Exception as exc:  # a header no parser reads is the client's error: a 400, never a 500
        raise MultipartError(f"the Content-Type header cannot be parsed ({exc})") from None
    boundary = params.get(b"boundary")
    if not boundary:
        raise MultipartError("the Content-Type header has no multipart boundary")
    finder = _FileFinder(field, max_files, max_fields, max_part_size)
    try:
        parser = MultipartParser(boundary, finder.callbacks())  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except MultipartError:
        raise
    except (FormParserError, ValueError) as exc:  # the parser's own errors, and a boundary it refuses
        raise MultipartError(f"invalid multipart data ({exc})") from None
    except Exception as exc:  # whatever else hostile bytes provoke is still the client's malformed body
        raise MultipartError(f"invalid multipart data ({type(exc).__name__}: {exc})") from None
    return finder.found
