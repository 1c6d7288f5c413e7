"""Photos and scans of handwriting through the one image path: the model is shown the glyph, not the page.

Each picture is composed here (numpy + Pillow, seeded): a glyph drawn with strokes, set on paper with one
hard condition (a shadow across it, ruled or squared paper, a blue pen on cream paper, a form's box), saved
as a JPEG. The check: what the image path makes of the photo matches what it makes of the same glyph as a
clean scan (correlation of the two 28x28 inputs), where the version-1 path (no ``clean`` step, what a model
saved before it records) is shown a grey box instead.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from glyphlab.data import cleanup
from glyphlab.data.images import (
    ImageConfig,
    NoInkError,
    Preprocessing,
    SeveralGlyphsError,
    prepare_bytes,
    prepare_image,
)
from glyphlab.data.photos import photo_bytes

NEW = ImageConfig.mnist_style(28)
V1 = ImageConfig.from_dict(
    {k: v for k, v in NEW.to_dict().items() if k not in ("clean", "binary", "stroke", "version")}
)
CREAM, BLUE, BLACK = (0.96, 0.92, 0.80), (0.12, 0.22, 0.62), (0.1, 0.1, 0.12)


def glyph(kind: str, side: int = 60, width: int = 6) -> np.ndarray:
    """A handwritten-like glyph, ink = 1 on 0: '7', '4' (two strokes), '0', '5' (its bar apart)."""
    im = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(im)
    s = side / 60
    strokes = {
        "7": [[(12, 8), (48, 8), (26, 54)]],
        "4": [[(36, 6), (10, 38), (50, 38)], [(38, 20), (38, 56)]],
        "0": [],
        "5": [[(20, 6), (46, 6)], [(18, 12), (16, 28), (34, 26), (44, 36), (40, 50), (18, 54)]],
    }[kind]
    for line in strokes:
        d.line([(x * s, y * s) for x, y in line], fill=255, width=width, joint="curve")
    if kind == "0":
        d.ellipse([14 * s, 6 * s, 46 * s, 54 * s], outline=255, width=width)
    return np.asarray(im, np.float32) / 255


def photo(
    glyphs: list[np.ndarray],
    *,
    paper=CREAM,
    ink=BLACK,
    shadow: float = 0.0,
    ruled: int = 0,
    squared: int = 0,
    box: bool = False,
    size=(120, 150),
    seed: int = 0,
) -> bytes:
    """A JPEG of ``glyphs`` side by side on a lit page: ``shadow`` darkens the page's right part (a hard
    edge through the first glyph), ``ruled``/``squared`` draw lines every that many px, ``box`` a form box."""
    rng = np.random.default_rng(seed)
    h, w = size
    page = np.ones((h, w, 3), np.float32) * np.array(paper, np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    page *= (1 - 0.15 * xx / w)[..., None]  # a light gradient
    lines = np.zeros((h, w), np.float32)
    if ruled:
        lines[(yy % ruled) == ruled // 2] = 1
    if squared:
        lines[((yy % squared) == 3) | ((xx % squared) == 3)] = 1
    page = page * (1 - 0.45 * lines[..., None]) + 0.45 * lines[..., None] * np.array((0.45, 0.6, 0.9))
    alpha = np.zeros((h, w), np.float32)
    left = 18
    for g in glyphs:
        top = (h - g.shape[0]) // 2
        alpha[top : top + g.shape[0], left : left + g.shape[1]] = np.maximum(
            alpha[top : top + g.shape[0], left : left + g.shape[1]], g
        )
        left += g.shape[1] + 10
    if box:
        t, l, b, r = 20, 10, h - 20, left
        page[t:b, [l, r]] *= 0.35
        page[[t, b], l:r] *= 0.35
    img = page * (1 - alpha[..., None]) + np.array(ink, np.float32) * alpha[..., None]
    if shadow:
        img[:, int(0.45 * w) :] *= 1 - shadow
    img += rng.normal(0, 0.012, img.shape)
    buf = io.BytesIO()
    Image.fromarray((img.clip(0, 1) * 255).round().astype(np.uint8), "RGB").save(buf, "JPEG", quality=75)
    return buf.getvalue()


def reference(g: np.ndarray) -> np.ndarray:
    """The glyph as a clean scan, through the same path."""
    page = np.zeros((g.shape[0] + 20, g.shape[1] + 20), np.float32)
    page[10:-10, 10:-10] = g
    return prepare_image(Image.fromarray((255 * (1 - page)).astype(np.uint8)), NEW).pixels


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


CASES = {
    "shadow across the glyph": dict(kind="7", shadow=0.45),
    "ruled paper": dict(kind="4", ruled=14),
    "blue pen on cream, squared paper": dict(kind="0", ink=BLUE, squared=16),
    "a form's box": dict(kind="7", box=True),
    "shadow and ruled paper, grey page": dict(kind="0", paper=(0.75, 0.75, 0.74), shadow=0.35, ruled=12),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_photo_gives_the_model_the_glyph(case):
    kw = dict(CASES[case])
    g = glyph(kw.pop("kind"))
    data = photo([g], **kw)
    ref = reference(g)
    new = prepare_bytes(data, NEW)
    assert not new.no_ink and new.others == 0 and new.inverted
    assert corr(new.pixels, ref) > 0.8, corr(new.pixels, ref)
    old = prepare_bytes(data, V1).pixels  # today's path before the clean step: the page, not the glyph
    assert corr(old, ref) < 0.6, corr(old, ref)


def test_a_bright_yellow_note_is_paper_not_a_digital_canvas():
    """Its red and green channels saturate at 255 on most pixels; only a white or black background in every
    channel makes a picture a digital canvas (which skips the paper steps)."""
    g = glyph("4")
    new = prepare_bytes(photo([g], paper=(1.25, 1.25, 0.6), ink=BLUE), NEW)
    assert not new.no_ink and corr(new.pixels, reference(g)) > 0.8


def test_a_broken_five_stays_one_glyph():
    g = glyph("5")
    new = prepare_bytes(photo([g], ruled=15), NEW)
    assert new.others == 0 and corr(new.pixels, reference(g)) > 0.8


def test_two_glyphs_side_by_side_are_said_to_be_several():
    data = photo([glyph("7", 50), glyph("4", 50)], size=(100, 160))
    assert prepare_bytes(data, NEW).others == 1
    assert prepare_bytes(data, V1).others == 0  # the old path says nothing: one silent guess for "74"


def test_a_blank_photographed_page_is_no_ink():
    data = photo([], shadow=0.4, ruled=14)
    assert prepare_bytes(data, NEW).no_ink
    assert not prepare_bytes(data, V1).no_ink  # the old path took the shadow and the lines for a glyph


def test_white_on_black_and_a_drawing_canvas_are_unchanged():
    """Clean inputs: the clean step changes what the model sees by almost nothing."""
    g = glyph("4")
    page = np.zeros((64, 64), np.float32)
    page[2:62, 2:62] = g
    for img in (page, 1 - page):
        im = Image.fromarray((img * 255).astype(np.uint8))
        a, b = prepare_image(im, NEW).pixels, prepare_image(im, V1).pixels
        assert np.abs(a - b).mean() < 0.01
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # the drawing page: black strokes, transparent
    ImageDraw.Draw(canvas).line([(140, 40), (140, 240)], fill=(0, 0, 0, 255), width=20)
    a, b = prepare_image(canvas, NEW), prepare_image(canvas, V1)
    assert np.abs(a.pixels - b.pixels).mean() < 0.01 and not a.no_ink and a.others == 0


def test_binary_makes_pure_strokes():
    out = prepare_bytes(photo([glyph("7")], shadow=0.3), ImageConfig.mnist_style(28, binary=True, centre_by_mass=False))
    assert set(np.unique(out.pixels)) <= {0.0, 1.0}


def test_config_versions():
    """A record without a version is version 1 (no clean step) and reads back as such; today's is 2."""
    assert NEW.clean and NEW.to_dict()["version"] == 2
    assert ImageConfig.from_dict(NEW.to_dict()) == NEW
    assert not V1.clean and V1 == ImageConfig.mnist_style(28, clean=False)
    with pytest.raises(Exception, match="version 3"):
        ImageConfig.from_dict({**NEW.to_dict(), "version": 3})
    with pytest.raises(Exception, match="unknown image config field"):  # a v1 record cannot name v2 fields
        ImageConfig.from_dict({"canvas": [28, 28], "clean": True})
    assert "the glyph found" in NEW.describe() and "the glyph found" not in V1.describe()


def test_predictor_refuses_several_glyphs_and_blank_pages_and_returns_inputs(tmp_path):
    """Through a saved model: one clear refusal each, and what the model saw on request."""
    from glyphlab.models.persistence import save_model
    from glyphlab.models.registry import create_model
    from glyphlab.serving.predictor import Predictor

    rng = np.random.default_rng(0)
    x = np.stack([reference(glyph(k)) for k in ("7", "4", "0")] * 4) + rng.normal(0, 0.01, (12, 28, 28))
    model = create_model("logreg").fit(
        x.clip(0, 1).astype(np.float32),
        np.array([0, 1, 2] * 4),
        classes=["7", "4", "0"],
        preprocessing=Preprocessing.files(NEW),
    )
    save_model(model, tmp_path / "m")
    p = Predictor(tmp_path / "m")
    (tmp_path / "two.jpg").write_bytes(photo([glyph("7", 50), glyph("4", 50)], size=(100, 160)))
    (tmp_path / "blank.jpg").write_bytes(photo([], ruled=14))
    (tmp_path / "one.jpg").write_bytes(photo([glyph("0")], shadow=0.4, squared=16))
    with pytest.raises(SeveralGlyphsError, match="several glyphs.*glyphlab read"):
        p.prepare_file(tmp_path / "two.jpg")
    with pytest.raises(NoInkError):
        p.prepare_file(tmp_path / "blank.jpg")
    probs, inputs = p.predict([tmp_path / "one.jpg"], return_inputs=True)
    assert p.classes[int(probs.argmax())] == "0" and inputs.shape == (1, 28, 28)
    assert corr(inputs[0], reference(glyph("0"))) > 0.8
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["preprocessing"]["image_config"]["version"] == 2


def test_a_model_saved_before_the_clean_step_is_served_exactly_as_before(tmp_path):
    """A manifest whose image config has no version (written before the clean step): the old steps, bit for bit."""
    from glyphlab.models.persistence import save_model
    from glyphlab.models.registry import create_model
    from glyphlab.serving.predictor import Predictor

    x = np.stack([reference(glyph(k)) for k in ("7", "4", "0")] * 2)
    model = create_model("logreg").fit(
        x, np.array([0, 1, 2] * 2), classes=["7", "4", "0"], preprocessing=Preprocessing.files(NEW)
    )
    save_model(model, tmp_path / "m")
    manifest_path = tmp_path / "m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for key in ("clean", "binary", "stroke", "version"):  # as glyphlab wrote it before
        del manifest["preprocessing"]["image_config"][key]
    manifest_path.write_text(json.dumps(manifest))
    p = Predictor(tmp_path / "m")
    assert p.image_config == V1 and "the glyph found" not in p.info()["preprocessing_text"]
    data = photo([glyph("0")], shadow=0.4, ruled=14)
    np.testing.assert_array_equal(p.prepare_bytes(data), prepare_bytes(data, V1).pixels)


def grey_share(x: np.ndarray) -> float:
    """The share of a model input's ink pixels (above 0.1) that are grey (below 0.9): half of them on MNIST."""
    ink = x > 0.1
    return float((ink & (x < 0.9)).sum() / max(ink.sum(), 1))


def test_a_blurred_photo_gets_strokes_as_solid_as_mnists():
    """The camera's blur and JPEG spread a stroke's edge over several grey pixels; MNIST's strokes have a solid
    core (half their ink pixels grey). A photo's ink is sharpened to that, as wide as before."""
    from scipy import ndimage

    g = ndimage.gaussian_filter(glyph("7", side=60, width=5), 1.6)
    mnist = replace(NEW, whole_pixels=True)  # as a model trained on MNIST gets it (no sub-pixel shift's blur)
    x = prepare_bytes(photo([g], shadow=0.3, ruled=14), mnist).pixels
    flat = prepare_bytes(photo([g], shadow=0.3, ruled=14), replace(mnist, stroke=None)).pixels
    assert grey_share(x) < 0.7, grey_share(x)  # 0.81 before the sharpening
    assert corr(x, reference(glyph("7", side=60, width=5))) > 0.8
    assert 0.7 < (flat > 0.5).sum() / max((x > 0.5).sum(), 1) < 1.4  # the strokes' width kept


def square_seven(side: int = 60, width: int = 3) -> np.ndarray:
    """A 7 whose bar runs along its top and whose stem runs straight down its right side: two sides of its box."""
    im = Image.new("L", (side, side), 0)
    ImageDraw.Draw(im).line([(10, 8), (48, 8), (48, 54)], fill=255, width=width, joint="curve")
    return np.asarray(im, np.float32) / 255


def test_a_seven_along_two_sides_of_its_box_is_no_form_box():
    """A form's box runs along all four sides of its bounding box, with ink in every corner; a 7 (or an L)
    hugging two of them is still the glyph (its thin strokes left its box's middle empty: taken for a box)."""
    g = square_seven()
    new = prepare_bytes(photo([g], ruled=14), NEW)
    assert not new.no_ink and corr(new.pixels, reference(g)) > 0.8, corr(new.pixels, reference(g))


def test_a_form_box_on_white_paper_scanned_flat_is_dropped():
    """A flat scan whose paper is pure white (taken for a digital picture): the box round the glyph still goes."""
    g = glyph("4")
    page = np.zeros((110, 100), np.float32)
    page[25:85, 20:80] = g
    page[8:102, [6, 7, 92, 93]] = 0.6  # the box: two-pixel sides, lighter than the pen
    page[[8, 9, 100, 101], 6:94] = 0.6
    im = Image.fromarray((255 * (1 - page)).round().astype(np.uint8))
    new = prepare_image(im, NEW)
    assert corr(new.pixels, reference(g)) > 0.8, corr(new.pixels, reference(g))


def test_a_margin_line_down_the_whole_page_is_not_the_glyph():
    """A red margin line from the page's top to its bottom, bolder than the faint pencil digit: a line of the
    page, never chosen while a glyph is there."""
    g = glyph("4", width=4)
    img = np.ones((120, 110, 3), np.float32) * np.array(CREAM, np.float32)
    img[:, 14:18] = (0.85, 0.2, 0.2)  # the margin
    new = prepare_bytes(pencil_photo(img, g, (40, 40), 0.55), NEW)
    assert corr(new.pixels, reference(g)) > 0.8, corr(new.pixels, reference(g))


def test_a_seven_written_near_the_top_edge_is_not_the_pages_edge():
    """A 7 whose bar runs a few pixels below the picture's top: most of its ink in the edge's strip, but it
    stays inside the picture and reaches far down, as no page's edge does."""
    g = square_seven()
    img = np.ones((120, 110, 3), np.float32) * np.array(CREAM, np.float32)
    new = prepare_bytes(pencil_photo(img, g, (-5, 30), 1.0), NEW)
    assert not new.no_ink and corr(new.pixels, reference(g)) > 0.8


def pencil_photo(page: np.ndarray, g: np.ndarray, at: tuple[int, int], strength: float) -> bytes:
    """A JPEG of ``page`` (H, W, 3) with the glyph ``g`` in grey pencil of ``strength`` with its top-left at ``at``
    (cut where it leaves the page)."""
    h, w = page.shape[:2]
    alpha = np.zeros((h + 2 * g.shape[0], w + 2 * g.shape[1]), np.float32)
    top, left = at[0] + g.shape[0], at[1] + g.shape[1]
    alpha[top : top + g.shape[0], left : left + g.shape[1]] = strength * g
    alpha = alpha[g.shape[0] : g.shape[0] + h, g.shape[1] : g.shape[1] + w]
    img = page * (1 - alpha[..., None]) + 0.3 * alpha[..., None]
    img += np.random.default_rng(3).normal(0, 0.012, img.shape)
    buf = io.BytesIO()
    Image.fromarray((img.clip(0, 1) * 255).round().astype(np.uint8), "RGB").save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_a_broken_form_box_left_beside_the_glyph_is_not_part_of_it():
    """What is left of a form's box after the threshold (a corner of it, an L of thin lines) lies in the
    glyph's column and near it, as a 5's bar does; thinner than the glyph's strokes and no more ink than a line of
    its length, it is no part of the glyph."""
    g = glyph("0", width=6)
    img = np.ones((120, 120, 3), np.float32) * np.array(CREAM, np.float32)
    img[94:96, 50:86] *= 0.3  # the box's bottom right corner: a piece of its bottom
    img[76:96, 84:86] *= 0.3  # and of its right side
    new = prepare_bytes(pencil_photo(img, g, (30, 25), 1.0), NEW)
    assert corr(new.pixels, reference(g)) > 0.8, corr(new.pixels, reference(g))


def test_a_fingers_shadow_from_the_edge_is_not_chosen_over_a_faint_digit():
    """A finger's shadow coming in from the picture's edge, darker than the pencil digit and with more ink: its
    strokes are many times as wide as the digit's, which lies inside the picture."""
    g = glyph("7", width=4)
    img = np.ones((130, 130, 3), np.float32) * np.array(CREAM, np.float32)
    yy, xx = np.mgrid[0:130, 0:130]
    finger = np.abs((yy - 130) + 1.1 * (xx - 5)) < 16  # a band from the bottom-left corner
    finger &= (yy - 130) ** 2 + (xx - 5) ** 2 < 60**2
    img[finger] *= 0.45
    new = prepare_bytes(pencil_photo(img, g, (20, 55), 0.6), NEW)
    assert corr(new.pixels, reference(g)) > 0.8, corr(new.pixels, reference(g))


@pytest.mark.parametrize("kind", ["7", "5"])
def test_a_fingers_tip_narrower_than_the_paper_window_is_paper(kind):
    """glyphlab.data.photos' photo of seed 52: a form box round the glyph, a finger's shadow reaching into the
    box from below. The paper window's closing filled the finger's rounded tip as if it were a stroke, so it
    was ink, joined the box and kept it from being dropped as a form's box: the model was shown the box."""
    g = glyph(kind, side=28, width=3)
    new = prepare_bytes(photo_bytes(g, np.random.default_rng(52)), NEW)
    assert not new.no_ink and new.others == 0
    assert corr(new.pixels, reference(g)) > 0.8, corr(new.pixels, reference(g))


def test_a_grainy_markers_strokes_are_measured_whole():
    """A bold marker's stroke with grain (paper showing through a third of it) is as wide as the pen, not as
    thin as the ink between its holes: measured on its grains it looked thin, so the paper window stayed
    narrower than the stroke and hollowed it out. A smooth stroke's width is measured as it was."""
    u8 = np.zeros((120, 120), np.uint8)
    u8[20:100, 50:66] = 200  # a stroke 16 px wide
    smooth = cleanup._bold_width(u8, 100)
    grains = np.random.default_rng(5).random(u8.shape) < 0.35
    grainy = cleanup._bold_width(np.where(grains, 40, u8).astype(np.uint8), 100)
    assert cleanup.stroke_width((np.where(grains, 40, u8) >= 100).astype(np.uint8)) < 8  # its grains alone
    assert 14 <= smooth <= 18 and 14 <= grainy <= 18, (smooth, grainy)
