"""The one image path: decoding of untrusted bytes, the config, the MNIST-style and as-given preprocessing."""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from glyphlab.data import images as images_module
from glyphlab.data.images import (
    DecodeLimits,
    ImageConfig,
    ImageInputError,
    ImageTooLargeError,
    Preprocessing,
    decode_image,
    prepare_gray,
    prepare_image,
    prepare_pixels,
    to_gray,
)
from glyphlab.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))  # the image helpers the serving tests share
from serving_helpers import bomb_png, drawn_one, png_bytes  # noqa: E402

MNIST = ImageConfig.mnist_style(28)


def prepare_bytes(data: bytes, shape) -> np.ndarray:
    return images_module.prepare_bytes(data, ImageConfig.mnist_style(shape)).pixels


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
    ref = prepare_image(base, MNIST).pixels
    variants = {
        "L": base.convert("L"),
        "1": base.convert("1"),
        "P": base.convert("P"),
        "CMYK": base.convert("CMYK"),
        "I;16": Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257),
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


def test_whole_pixel_centring_as_mnist_did_for_array_trained_models():
    """MNIST's digits all have their centre of mass within half a pixel of (14, 14) in 28x28: they were moved by
    whole pixels, so their strokes keep their grey levels. ``whole_pixels`` does the same (the fitted glyph's
    pixel values only move), and is the serving default of array-trained models, a version-2 record of one
    made before the field included; image folders and version 1 keep the bilinear shift to (13.5, 13.5)."""
    im = Image.new("L", (90, 120), 255)
    d = ImageDraw.Draw(im)
    d.line([(20, 15), (70, 15), (35, 105)], fill=0, width=9)  # a 7: its mass lies up and to the right
    d.line([(30, 60), (60, 60)], fill=0, width=7)
    whole = replace(MNIST, whole_pixels=True)
    unmoved = images_module.prepare_image(im, replace(whole, centre_by_mass=False)).pixels
    x = images_module.prepare_image(im, whole).pixels
    cy, cx = ndimage.center_of_mass(x)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert (np.round(ndimage.center_of_mass(unmoved), 1) != (14.0, 14.0)).any()  # the test moves it
    np.testing.assert_array_equal(np.sort(x[x > 0]), np.sort(unmoved[unmoved > 0]))  # moved, not resampled
    for config in (MNIST, replace(MNIST, clean=False)):  # image folders, version 1
        old = images_module.prepare_image(im, config).pixels
        unmoved_old = images_module.prepare_image(im, replace(config, centre_by_mass=False)).pixels
        np.testing.assert_allclose(ndimage.center_of_mass(old), (13.5, 13.5), atol=0.05)
        assert not np.array_equal(np.sort(old[old > 0]), np.sort(unmoved_old[unmoved_old > 0]))
    assert Preprocessing.arrays(28).config == whole and not MNIST.whole_pixels
    recorded = Preprocessing.arrays(28).to_dict()
    del recorded["image_config"]["whole_pixels"]  # a version-2 record from before the field
    assert Preprocessing.from_dict(recorded).config == whole
    files = Preprocessing.files(MNIST).to_dict()
    del files["image_config"]["whole_pixels"]
    assert Preprocessing.from_dict(files).config == MNIST


def test_small_inputs_fill_the_frame():
    x = prepare_bytes(png_bytes(drawn_one()), (8, 8))
    assert x.shape == (8, 8)
    rows = np.flatnonzero((x > 0.1).any(axis=1))
    assert rows[0] == 0 and rows[-1] == 7


def test_blank_image_is_all_zeros_and_said_so():
    blank = images_module.prepare_bytes(png_bytes(Image.new("RGB", (50, 50), "white")), MNIST)
    assert blank.no_ink and blank.pixels.max() == 0 and blank.pixels.shape == (28, 28)
    faint = Image.new("L", (50, 50), 250)
    ImageDraw.Draw(faint).line([(25, 5), (25, 45)], fill=240, width=4)  # 10 grey levels: a smudge, not ink
    assert prepare_image(faint, MNIST).no_ink
    for pixels in (np.zeros((5, 7)), np.zeros((28, 28)), np.full((28, 28), 0.5)):
        out = prepare_pixels(pixels, MNIST)
        assert out.no_ink, pixels.shape
    assert not prepare_image(drawn_one(), MNIST).no_ink


def test_animated_gif_first_frame_and_huge_work_side():
    frames = [drawn_one(100), Image.new("RGB", (100, 100), "white")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert prepare_bytes(buf.getvalue(), (28, 28)).max() > 0.9
    big = drawn_one(1800, "L")  # reduced before the float work
    assert prepare_bytes(png_bytes(big), (28, 28)).max() > 0.9


def test_prepare_pixels_keeps_right_shape_and_refuses_nan():
    cfg = ImageConfig.mnist_style(8)
    x = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    np.testing.assert_array_equal(prepare_pixels(x, cfg).pixels, x)
    with pytest.raises(ImageInputError):
        prepare_pixels(np.full((8, 8), np.nan), cfg)
    with pytest.raises(ImageInputError):
        prepare_pixels(np.zeros((2, 2, 2)), cfg)
    # another size is fitted with the config; its polarity is known (ink = 1), never inverted
    big = np.zeros((40, 40), np.float32)
    big[5:35, 18:22] = 1.0
    fitted = prepare_pixels(big, cfg)
    assert fitted.pixels[:, 3:5].max() > 0.5 and fitted.pixels[:, 0].max() < 0.1 and not fitted.inverted


def test_config_presets_scale_with_the_canvas_and_validate():
    assert MNIST == ImageConfig() and MNIST.box == 20 and MNIST.centre_by_mass
    assert ImageConfig.mnist_style(56).box == 40
    small = ImageConfig.mnist_style((8, 8))
    assert small.box is None and not small.centre_by_mass  # the 8x8 digits are drawn edge to edge
    given = ImageConfig.as_given(16)
    assert not given.crop_to_ink and not given.centre_by_mass and given.canvas == (16, 16)
    assert ImageConfig.from_options("mnist", size=16, invert=True).polarity == "dark-on-light"
    assert ImageConfig.from_options("as-given", size=[12, 10]).canvas == (12, 10)
    assert ImageConfig.from_dict(MNIST.to_dict()) == MNIST
    for bad, match in [
        ({"polarity": "inverse"}, "polarity must be one of auto"),
        ({"resample": "cubic"}, "resample must be one of"),
        ({"box": 0}, "box must be"),
        ({"canvas": (0, 28)}, "canvas"),
        ({"crop_to_ink": "yes"}, "crop_to_ink must be true or false"),
    ]:
        with pytest.raises(DataError, match=match):
            ImageConfig(**bad)
    with pytest.raises(DataError, match="unknown image option.*colour.*the image options are: preprocess, size"):
        ImageConfig.from_options("mnist", colour="red")
    with pytest.raises(DataError, match="preprocess must be one of mnist, as-given"):
        ImageConfig.from_options("centred")
    assert "cropped to the ink, fitted into a 20 px box, centred by mass in 28x28" in MNIST.describe()


def test_polarity_explicit_and_as_given_keeps_position():
    img = np.ones((64, 64), np.float32)  # dark ink on white, off-centre in the top-left quarter
    img[6:26, 8:14] = 0.0
    auto = prepare_gray(img, MNIST)
    assert auto.inverted and auto.pixels[14, 14] > 0.5  # cropped and centred
    forced = prepare_gray(img, ImageConfig(polarity="light-on-dark"))
    assert not forced.inverted and forced.no_ink  # read as light ink on dark paper, the white page is no glyph
    given = prepare_gray(img, ImageConfig.as_given(32)).pixels
    rows = np.flatnonzero((given > 0.5).any(axis=1))
    assert rows[0] < 8 and given[20:, :].max() < 0.1  # resized only: the stroke stays in the top-left


def test_sixteen_bit_palette_and_alpha_read_as_stored():
    g = np.zeros((30, 30), np.uint16)
    g[5:25, 12:18] = 65535
    assert to_gray(Image.fromarray(g)).max() == pytest.approx(1.0)
    assert to_gray(Image.fromarray((g // 2).astype(np.uint16))).max() == pytest.approx(0.5, abs=1e-3)  # not stretched
    pal = Image.fromarray((g // 257).astype(np.uint8)).convert("P")
    np.testing.assert_allclose(to_gray(pal), to_gray(Image.fromarray(g)), atol=1 / 255)


def test_preprocessing_record_round_trips():
    rec = Preprocessing.files(ImageConfig.as_given(16))
    assert Preprocessing.from_dict(rec.to_dict()) == rec
    arrays = Preprocessing.arrays((28, 28))
    assert arrays.trained_on == "arrays" and arrays.config == replace(MNIST, whole_pixels=True)
    assert "serving default" in arrays.note and Preprocessing.from_dict(arrays.to_dict()) == arrays
    assert Preprocessing.of_dataset({}, (28, 28)) == arrays
    with pytest.raises(DataError, match="trained_on"):
        Preprocessing.from_dict({"trained_on": "photos"})


@pytest.mark.parametrize("seed", range(20))
def test_fast_median_and_centre_of_mass_are_numpy_and_scipy_bit_for_bit(seed):
    """The one image path's own median and centre of mass (cheaper per call) give exactly what they replace."""
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 28 * 4, 449):
        values = (rng.random(n) ** rng.uniform(0.2, 5)).astype(np.float32)
        values[rng.random(n) < 0.3] = 0.0  # ties, as a blank border has
        assert images_module.median(values) == float(np.median(values))
    image = (rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) ** 3).astype(np.float32)
    image[image < 0.5] = 0.0
    image[0, 0] = 1.0  # some mass
    assert images_module.centre_of_mass(image) == tuple(float(c) for c in ndimage.center_of_mass(image))


def test_exif_orientation_turns_a_phone_photo_and_leaves_others_as_stored():
    """A phone stores a portrait photo landscape with an Orientation tag (6: turn 90 degrees clockwise); the
    path shows the glyph as the person saw it. Without the tag (or with 1) the pixels are read as stored."""
    arr = np.zeros((20, 40), np.uint8)
    arr[2:6, 30:38] = 255  # a mark near the top right, as stored
    stored = Image.fromarray(arr)

    def picture(orientation: int | None) -> bytes:
        exif = Image.Exif()
        if orientation is not None:
            exif[0x0112] = orientation
        buf = io.BytesIO()
        stored.save(buf, "PNG", exif=exif.tobytes())
        return buf.getvalue()

    turned = to_gray(decode_image(picture(6)))
    assert turned.shape == (40, 20)  # width and height swapped
    np.testing.assert_array_equal(turned, np.rot90(arr, k=-1).astype(np.float32) / 255.0)
    for tag in (None, 1):
        np.testing.assert_array_equal(to_gray(decode_image(picture(tag))), arr.astype(np.float32) / 255.0)
