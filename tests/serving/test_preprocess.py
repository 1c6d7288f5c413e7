"""Decoding of untrusted bytes and the MNIST-style preprocessing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from glyphlab.errors import DataError
from glyphlab.serving.preprocess import (
    DecodeLimits,
    ImageInputError,
    ImageTooLargeError,
    decode_image,
    fit_to_input,
    prepare_bytes,
    prepare_pixels,
    to_ink,
)

from serving_helpers import bomb_png, drawn_one, png_bytes


def test_errors_are_glyphlab_errors():
    assert issubclass(ImageInputError, DataError) and issubclass(ImageTooLargeError, ImageInputError)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"hello world, not an image", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "damaged|truncated|not an image"),
        (b"GIF89a" + b"\xff" * 20, "damaged|truncated|not an image"),
    ],
)
def test_not_images(data, match):
    with pytest.raises(ImageInputError, match=match):
        decode_image(data)


def test_truncated_png_and_jpeg():
    im = drawn_one()
    for fmt in ("PNG", "JPEG"):
        data = png_bytes(im, fmt)
        with pytest.raises(ImageInputError, match="truncated|damaged"):
            decode_image(data[: len(data) // 2])


def test_pixel_limit_refuses_bombs_without_decoding():
    with pytest.raises(ImageInputError, match="pixels"):
        decode_image(bomb_png())  # 400 M pixels: also over Pillow's own limit
    with pytest.raises(ImageInputError, match="4,000,000"):
        decode_image(bomb_png(3000, 3000))  # 9 M: under Pillow's limit, over ours; the header is all we read
    big = Image.new("1", (3000, 2000))
    with pytest.raises(ImageInputError, match="limit"):
        decode_image(png_bytes(big), DecodeLimits(max_pixels=1_000_000))


def test_byte_limit():
    with pytest.raises(ImageTooLargeError):
        decode_image(b"\0" * 101, DecodeLimits(max_bytes=100))


def test_modes_all_give_ink_on_black():
    base = drawn_one(120)
    ref = fit_to_input(to_ink(base), (28, 28))
    variants = {
        "L": base.convert("L"),
        "1": base.convert("1"),
        "P": base.convert("P"),
        "CMYK": base.convert("CMYK"),
        "I;16": Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257)),
        "inverted": Image.eval(base.convert("L"), lambda v: 255 - v),
    }
    # a transparent canvas with black strokes (what a browser canvas exports without a fill)
    rgba = Image.new("RGBA", base.size, (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(60, 12), (60, 108)], fill=(0, 0, 0, 255), width=10)
    variants["RGBA"] = rgba
    # white strokes on transparency
    rgba_w = Image.new("RGBA", base.size, (255, 255, 255, 0))
    ImageDraw.Draw(rgba_w).line([(60, 12), (60, 108)], fill=(255, 255, 255, 255), width=10)
    variants["RGBA-white"] = rgba_w
    for name, im in variants.items():
        for fmt in ("PNG",) if im.mode not in ("CMYK",) else ("JPEG",):
            x = prepare_bytes(png_bytes(im, fmt), (28, 28))
            assert x.shape == (28, 28) and x.dtype == np.float32, name
            assert 0.0 <= x.min() and x.max() == pytest.approx(1.0), name
            assert x[0].max() < 0.05 and x[:, 0].max() < 0.05, f"{name}: the background is not black"
            assert np.abs(x - ref).mean() < 0.08, name


def test_mnist_recipe_box_and_centre_of_mass():
    im = Image.new("L", (400, 300), 255)
    d = ImageDraw.Draw(im)
    d.line([(50, 40), (60, 260)], fill=0, width=14)  # a tall stroke near the left edge
    d.line([(60, 260), (120, 250)], fill=0, width=14)
    x = prepare_bytes(png_bytes(im), (28, 28))
    rows = np.flatnonzero((x > 0.1).any(axis=1))
    assert 18 <= rows[-1] - rows[0] + 1 <= 22  # longest side ~20 px
    cy, cx = ndimage.center_of_mass(x)
    assert abs(cy - 13.5) < 0.75 and abs(cx - 13.5) < 0.75


def test_small_inputs_fill_the_frame():
    x = prepare_bytes(png_bytes(drawn_one()), (8, 8))
    assert x.shape == (8, 8)
    rows = np.flatnonzero((x > 0.1).any(axis=1))
    assert rows[0] == 0 and rows[-1] == 7


def test_blank_image_is_all_zeros():
    assert prepare_bytes(png_bytes(Image.new("RGB", (50, 50), "white")), (28, 28)).max() == 0
    assert prepare_pixels(np.zeros((5, 7)), (28, 28)).max() == 0


def test_animated_gif_first_frame_and_huge_work_side():
    frames = [drawn_one(100), Image.new("RGB", (100, 100), "white")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert prepare_bytes(buf.getvalue(), (28, 28)).max() > 0.9
    big = drawn_one(1800, "L")  # reduced before the float work
    assert prepare_bytes(png_bytes(big), (28, 28)).max() > 0.9


def test_prepare_pixels_keeps_right_shape_and_refuses_nan():
    x = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    np.testing.assert_array_equal(prepare_pixels(x, (8, 8)), x)
    with pytest.raises(ImageInputError):
        prepare_pixels(np.full((8, 8), np.nan), (8, 8))
    with pytest.raises(ImageInputError):
        prepare_pixels(np.zeros((2, 2, 2)), (8, 8))
