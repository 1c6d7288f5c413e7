"""The in-memory multipart parser of uploads: the file's exact bytes, and the same refusals as request.form()."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glyphlab.serving.multipart import MultipartError, upload_file


def encoded(files=None, data=None) -> tuple[bytes, str]:
    """A body and Content-Type exactly as httpx (the test client, and many users' client) sends them."""
    req = httpx.Request("POST", "http://x/prediction", files=files, data=data)
    return req.read(), req.headers["content-type"]


def test_the_file_comes_back_byte_for_byte_beside_other_fields():
    payload = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"  # bytes that look like multipart syntax
    body, ctype = encoded(files={"file": ("glyph.png", payload, "image/png")}, data={"note": "hello", "k": "v"})
    assert upload_file(body, ctype) == payload


@pytest.mark.parametrize("kind", ["other field name", "not a file part"])
def test_no_file_field_is_none(kind):
    body, ctype = (
        encoded(files={"image": ("x.png", b"abc", "image/png")})
        if kind == "other field name"
        else encoded(files={"other": ("x.png", b"abc", "image/png")}, data={"file": "just text"})
    )
    assert upload_file(body, ctype) is None


def test_a_truncated_body_never_yields_a_partial_file():
    body, ctype = encoded(files={"file": ("glyph.png", b"x" * 5000, "image/png")})
    assert upload_file(body[:3000], ctype) is None


@pytest.mark.parametrize(
    "body_ctype, message",
    [
        ((b"--xx\r\ngarbage", "multipart/form-data"), "boundary"),
        (
            (b"--xx\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--xx--\r\n", "multipart/form-data; boundary=xx"),
            '"name"',
        ),
    ],
)
def test_malformed_bodies_are_refused(body_ctype, message):
    with pytest.raises(MultipartError, match=message):
        upload_file(*body_ctype)


def test_limits_on_files_fields_and_field_size():
    two, ctype2 = encoded(files=[("file", ("a.png", b"a", "image/png")), ("file", ("b.png", b"b", "image/png"))])
    with pytest.raises(MultipartError, match="too many files"):
        upload_file(two, ctype2)
    many, ctype_m = encoded(files={"file": ("a.png", b"a", "image/png")}, data={f"f{i}": "x" for i in range(9)})
    with pytest.raises(MultipartError, match="too many fields"):
        upload_file(many, ctype_m)
    big, ctype_b = encoded(files={"file": ("a.png", b"a", "image/png")}, data={"note": "x" * 2000})
    with pytest.raises(MultipartError, match="larger than 1,000 bytes"):
        upload_file(big, ctype_b, max_part_size=1000)
    assert upload_file(big, ctype_b, max_part_size=5000) == b"a"


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400),
    st.integers(0, 399),
    st.sampled_from(
        [
            "multipart/form-data; boundary=b",
            'multipart/form-data; boundary="b"',
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\x00\xff",
            "multipart/form-data; charset=x; boundary=b",
        ]
    ),
)
def test_hostile_bodies_give_bytes_none_or_a_multipart_error(noise, cut, ctype):
    """Random bytes, and a real body cut or spliced with them: the answer is the file, None or MultipartError."""
    real, _ = encoded(files={"file": ("g.png", b"\x89PNG" + noise, "image/png")})
    real = real.replace(real.split(b"\r\n", 1)[0][2:], b"b")  # httpx's boundary -> "b"
    for body in (noise, real[:cut] + noise, real):
        try:
            got = upload_file(body, ctype)
        except MultipartError:
            continue
        assert got is None or isinstance(got, bytes)
