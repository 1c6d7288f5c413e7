"""The clean step's shortcuts give the same numbers as the long way, bit for bit.

A digital picture (a canvas, an exported glyph) is cut to its ink before its components are looked for,
their boxes come from one comparison each instead of OpenCV's statistics, the kept ink is scaled through a
256-entry table, and the image path crops the glyph (and restrokes it) without the whole picture; one
component is counted and masked without a label comparison. Each is
checked against the long way on seeded pictures: glyphs drawn anywhere (touching an edge, at odd and even
offsets), several glyphs, specks, colour, small crops and photo-like pages.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from glyphlab.data import cleanup
from glyphlab.data.images import ImageConfig, _fit, prepare_image


def drawn(seed: int) -> np.ndarray:
    """A seeded digital picture: 1-3 stroke glyphs, dark on white or light on black, grey or RGB, maybe specks."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 140)), int(rng.integers(20, 140))
    im = Image.new("L", (2 * w, 2 * h), 0)  # drawn at twice the size and reduced: soft, anti-aliased edges
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 4))):
        pts = [(float(rng.uniform(-0.1, 1.1) * 2 * w), float(rng.uniform(-0.1, 1.1) * 2 * h)) for _ in range(3)]
        d.line(pts, fill=int(rng.integers(120, 256)), width=int(rng.integers(2, 18)), joint="curve")
    arr = np.asarray(im.resize((w, h), Image.Resampling.BOX)).copy()
    for _ in range(int(rng.integers(0, 6))):  # specks
        arr[rng.integers(0, h), rng.integers(0, w)] = int(rng.integers(40, 256))
    if rng.random() < 0.5:
        arr = 255 - arr
    if rng.random() < 0.4:
        arr = np.stack([arr, arr, (arr * rng.uniform(0.5, 1)).astype(np.uint8)], axis=-1)
    return arr


def photo_like(seed: int) -> np.ndarray:
    """A seeded page: light gradient, noise, lines, a glyph (the page steps, where nothing is cut)."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(60, 160)), int(rng.integers(60, 160))
    page = np.full((h, w), 200.0) * np.linspace(0.8, 1.0, w)[None, :] + rng.normal(0, 4, (h, w))
    page[:: int(rng.integers(10, 20))] *= 0.7
    im = Image.fromarray(page.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.line([(w * 0.3, h * 0.2), (w * 0.6, h * 0.5), (w * 0.4, h * 0.8)], fill=30, width=4)
    return np.asarray(im)


PICTURES = [drawn(s) for s in range(60)] + [photo_like(s) for s in range(8)]


def _uncut(u8, weak, sure):
    return u8, weak, sure, (0, 0), cv2.boundingRect(weak)


def _opencv_components(weak, u8, sure, known=None):
    n, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    return n, labels, stats, cleanup._masses(labels, n, u8, weak, sure)


@pytest.mark.parametrize("k", range(len(PICTURES)))
def test_cutting_a_digital_picture_to_its_ink_changes_nothing(k, monkeypatch):
    fast = cleanup.find_glyph(PICTURES[k])
    monkeypatch.setattr(cleanup, "_crop_to_ink", _uncut)
    monkeypatch.setattr(cleanup, "_components", _opencv_components)
    slow = cleanup.find_glyph(PICTURES[k])
    assert (fast.no_ink, fast.others, fast.box, fast.ink_dark) == (slow.no_ink, slow.others, slow.box, slow.ink_dark)
    assert fast.ink.shape == slow.ink.shape and np.array_equal(fast.ink, slow.ink)


def test_component_boxes_and_masses_match_opencvs_statistics():
    rng = np.random.default_rng(3)
    for _ in range(60):
        shape = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
        weak = (rng.random(shape) < rng.uniform(0.005, 0.3)).astype(np.uint8)
        u8 = (rng.integers(20, 256, shape) * weak).astype(np.uint8)
        sure = ((u8 > 120) & (rng.random(shape) < 0.5)).astype(np.uint8)
        n, labels, stats, mass = cleanup._components(weak, u8, sure)
        n2, labels2, stats2, mass2 = _opencv_components(weak, u8, sure)
        assert n == n2 and np.array_equal(labels, labels2) and np.array_equal(mass, mass2)
        assert np.array_equal(stats[1:], stats2[1:]) and stats[0, 4] == stats2[0, 4]  # label 0: its area


@pytest.mark.parametrize("share", [None, 0.05, 0.11, 0.3])
def test_the_glyphs_crop_is_what_the_whole_picture_gives(share):
    config = ImageConfig.mnist_style(28, stroke=share)
    for picture in PICTURES:
        g = cleanup.find_glyph(picture)
        if g.no_ink:
            continue
        whole = g.ink if share is None else cleanup.normalise_stroke(g.ink, g.box, share)
        assert np.array_equal(_fit(cleanup.glyph_ink(g, share), config), _fit(whole, config))


def test_the_kept_inks_table_is_the_arrays_product():
    rng = np.random.default_rng(4)
    u8 = rng.integers(0, 256, (50, 70), dtype=np.uint8)
    keep = (rng.random((50, 70)) < 0.5).astype(np.uint8)
    for sure_t in (51.0, 80.5, 140.0):
        kept = np.where(keep, u8, 0).astype(np.uint8)
        level = cleanup._percentile(np.bincount(kept[kept >= sure_t], minlength=256), 90)
        expected = np.minimum(kept.astype(np.float32) * (1.0 / max(level, 1)), 1.0)
        assert np.array_equal(cleanup._kept_ink(u8, keep, sure_t), expected)
        assert np.array_equal(cleanup._kept_ink(u8, keep.astype(bool), sure_t), expected)


def test_the_histogram_is_numpys():
    rng = np.random.default_rng(5)
    for density in (0.0, 0.001, 0.05, 0.5, 1.0):
        u8 = (rng.integers(0, 256, (37, 53)) * (rng.random((37, 53)) < density)).astype(np.uint8)
        assert np.array_equal(cleanup._histogram(u8), np.bincount(u8.ravel(), minlength=256))


def test_prepare_image_of_a_digital_picture_keeps_its_input():
    # the path as a whole on a drawn digit: the input is the long way's, so a served model answers the same
    picture = drawn(7)
    config = ImageConfig.mnist_style(28)
    g = cleanup.find_glyph(picture)
    expected = _fit(cleanup.normalise_stroke(g.ink, g.box, config.stroke), config)
    assert np.array_equal(prepare_image(Image.fromarray(picture), config).pixels, expected)


def test_one_components_mask_is_its_labels():
    # find_glyph masks a picture's one component by its ink map, not by comparing labels: the same pixels
    single = 0
    for picture in PICTURES:
        pg = cleanup._page(picture, None, cleanup.WORK_SIDE, crop=True)
        if pg.mass is None:
            continue
        for kept in np.flatnonzero(pg.mass > 0):
            keep = np.arange(len(pg.mass)) == kept
            single += len(keep) == 2
            assert np.array_equal(cleanup._kept_mask(pg, keep) > 0, cleanup._label_mask(pg.labels, [kept]) > 0)
    assert single >= 10


def test_one_components_statistics_are_opencvs():
    rng = np.random.default_rng(6)
    for _ in range(30):
        shape = (int(rng.integers(8, 60)), int(rng.integers(8, 60)))
        weak = np.zeros(shape, np.uint8)
        t, l = int(rng.integers(0, shape[0] - 4)), int(rng.integers(0, shape[1] - 4))
        weak[t : t + int(rng.integers(2, 8)), l : l + int(rng.integers(2, 8))] = 1  # one blob
        u8 = (rng.integers(20, 256, shape) * weak).astype(np.uint8)
        sure = ((u8 > 120) & (rng.random(shape) < rng.uniform(0, 1))).astype(np.uint8)
        n, labels, stats, mass = cleanup._components(weak, u8, sure)
        n2, labels2, stats2, mass2 = _opencv_components(weak, u8, sure)
        assert n == n2 == 2 and np.array_equal(labels, labels2) and np.array_equal(mass, mass2)
        assert np.array_equal(stats[1:], stats2[1:]) and stats[0, 4] == stats2[0, 4] and stats.dtype == np.int32


def test_the_percentile_is_the_first_level_reaching_its_share():
    rng = np.random.default_rng(7)
    for _ in range(50):
        hist = (rng.integers(0, 500, 256) * (rng.random(256) < rng.uniform(0.01, 1))).astype(np.int64)
        for q in (50, 90, 99.7, 99.95):
            cum = [int(c) for c in np.cumsum(hist)]
            expected = next((i for i, c in enumerate(cum) if c >= cum[-1] * q / 100.0), 0) if cum[-1] else 0
            assert cleanup._percentile(hist, q) == expected


def test_the_percentile_counted_from_the_top_is_the_histograms():
    # a drawn picture's peak and kept-ink scale are counted down from 255: the same level as the histogram's
    rng = np.random.default_rng(8)
    found = 0
    for _ in range(200):
        shape = (int(rng.integers(18, 90)), int(rng.integers(18, 90)))
        top = int(rng.integers(240, 256))  # the pen's level: a share of the ink has it, the rest is softer
        u8 = rng.integers(0, top + 1, shape)
        u8[rng.random(shape) < rng.uniform(0, 0.6)] = top
        u8 = (u8 * (rng.random(shape) < rng.uniform(0.05, 0.9))).astype(np.uint8)
        for q, lowest in ((99.7, 0), (90, 0), (90, int(rng.integers(1, 256))), (90, 255)):
            hist = np.bincount(u8.ravel(), minlength=256)
            hist[:lowest] = 0
            level = cleanup._top_percentile(u8, q, lowest)
            if level is not None:
                found += 1
                assert level == cleanup._percentile(hist, q)
    assert 100 <= found <= 700  # of 800: the count from the top answered often, and the histogram the rest


@pytest.mark.parametrize("k", range(len(PICTURES)))
def test_a_drawn_glyphs_ink_is_scaled_as_the_histogram_says(k):
    pg = cleanup._page(PICTURES[k], None, cleanup.WORK_SIDE, crop=True)
    if pg.weak is None:
        return
    keep = cv2.dilate(pg.weak, np.ones((3, 3), np.uint8))
    for sharpen in (False, True):
        fast = cleanup._kept_ink(pg.u8, keep, pg.sure_t, sharpen, top=True)
        assert np.array_equal(fast, cleanup._kept_ink(pg.u8, keep, pg.sure_t, sharpen, top=False))


def test_the_corner_test_sees_every_box_the_sides_test_sees():
    # the form-box search looks at a component's four corners before its whole box: it passes every box
    rng = np.random.default_rng(9)
    boxes = 0
    for _ in range(300):
        bh, bw = int(rng.integers(3, 40)), int(rng.integers(3, 40))
        labels = (rng.random((bh, bw)) < rng.uniform(0.1, 0.95)).astype(np.int32) * 3
        if rng.random() < 0.5:  # a drawn box: its four sides
            labels[0] = labels[-1] = 3
            labels[:, 0] = labels[:, -1] = 3
        sides = cleanup._box_sides(labels == 3)
        boxes += sides is not None
        assert cleanup._corners_inked(labels, 3) or sides is None
    assert boxes >= 50
