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


class _Part:
    __slots__ = ("disposition", "name", "is_file", "chunks", "size")

    def __init__(self) -> None:
        self.disposition = b""
        self.name = ""
        self.is_file = False
        self.chunks: list[bytes] = []
        self.size = 0


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
    found: bytes | None = None
    files = fields = 0
    part = _Part()
    header_name: list[bytes] = []
    header_value: list[bytes] = []

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        if b"".join(header_name).lower() == b"content-disposition":
            part.disposition = b"".join(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        nonlocal files, fields
        _, options = parse_options_header(part.disposition)
        if b"name" not in options:
            raise MultipartError('a part\'s Content-Disposition header has no "name"')
        part.name = options[b"name"].decode("utf-8", "replace")
        part.is_file = b"filename" in options
        if part.is_file:
            files += 1
            if files > max_files:
                raise MultipartError(f"too many files: at most {max_files} per request")
        else:
            fields += 1
            if fields > max_fields:
                raise MultipartError(f"too many fields: at most {max_fields} per request")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.size += end - start
        if not part.is_file and part.size > max_part_size:
            raise MultipartError(f"a field is larger than {max_part_size:,} bytes")
        part.chunks.append(data[start:end])

    def on_part_end() -> None:
        nonlocal found
        if part.is_file and part.name == field and found is None:
            found = b"".join(part.chunks)

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except MultipartError:
        raise
    except (FormParserError, ValueError) as exc:  # the parser's own errors, and a boundary it refuses
        raise MultipartError(f"invalid multipart data ({exc})") from None
    except Exception as exc:  # whatever else hostile bytes provoke is still the client's malformed body
        raise MultipartError(f"invalid multipart data ({type(exc).__name__}: {exc})") from None
    return found
