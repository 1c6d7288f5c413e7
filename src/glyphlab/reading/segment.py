"""The picture's ink cut into lines and pieces, candidate cuts, and each candidate character's model input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glyphlab.data.images import (
    ImageConfig,
    _fit,
)
from glyphlab.reading.costs import CUT_MARGIN, CUT_SPACING, CUT_WIDTH


# -- the picture's ink, its lines and pieces ------------------------------------------------------------------
def _edge_strokes(shape: tuple[int, ...], boxes: np.ndarray) -> np.ndarray:
    """Which components are what is left of a ruling at the picture's edge: a thin bar (at least four times as
    long as it is wide) touching the picture's border. A squared page's line cut off by the crop is one (it
    has no glyph's ink beside it); on its own rows it would be read as a line of its own, a "1"."""
    t, l, b, r = (boxes[:, k] for k in range(4))
    h, w = b - t, r - l
    thin = (4 * w <= h) | (4 * h <= w)
    return thin & ((t <= 0) | (l <= 0) | (b >= shape[0]) | (r >= shape[1]))


def _line_bands(labels: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """The components (0-based ids) of each line, top to bottom: bands of rows with ink, separated by empty
    rows; a band less than 0.45 as tall as the tallest is joined to its nearest tall band, and a band of
    nothing but ruling left at the picture's edge (:func:`_edge_strokes`) is dropped."""
    rows = np.zeros(labels.shape[0] + 1, bool)
    for t, _, b, _ in boxes:
        rows[t:b] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[False], rows])))
    bands = [(edges[i], edges[i + 1]) for i in range(0, len(edges) - 1, 2)]
    if len(bands) <= 1:
        return [np.arange(len(boxes))]
    centre = (boxes[:, 0] + boxes[:, 2]) / 2
    band_of = np.array([next(i for i, (t, b) in enumerate(bands) if t <= c < b + 1) for c in centre])
    ruling = _edge_strokes(labels.shape, boxes)
    real = [i for i in range(len(bands)) if not ruling[band_of == i].all()]
    if not real:  # nothing but bars: read them rather than nothing
        real = list(range(len(bands)))
    tallest = max(bands[i][1] - bands[i][0] for i in real)
    tall = [i for i in real if bands[i][1] - bands[i][0] >= 0.45 * tallest]
    owner = {}
    for i in real:
        t, b = bands[i]
        mid = (t + b) / 2
        owner[i] = i if i in tall else min(tall, key=lambda j: min(abs(mid - bands[j][0]), abs(mid - bands[j][1])))
    owned = np.array([owner.get(int(k), -1) for k in band_of])
    return [np.flatnonzero(owned == i) for i in tall]


@dataclass
class _Piece:
    left: int
    right: int
    comps: list[int]  # 0-based component ids
    group: int
    cut_before: int = 0  # strokes its left edge cuts through (0: a gap between components)


def _pieces(
    ink: np.ndarray, labels: np.ndarray, boxes: np.ndarray, mass: np.ndarray, ids: np.ndarray
) -> tuple[list[_Piece], float]:
    """The pieces of one line, left to right, and the line's character height."""
    order = ids[np.argsort(boxes[ids, 1], kind="stable")]
    tall = np.median((boxes[ids, 2] - boxes[ids, 0])[mass[ids] >= 0.3 * mass[ids].max()])
    groups: list[list[int]] = []
    spans: list[list[int]] = []  # left, right, top, bottom
    for j in order:
        t, l, b, r = (int(v) for v in boxes[j])
        for g, s in zip(groups, spans):
            overlap = min(s[1], r) - max(s[0], l)
            # a stroke in the column of another (a 5's bar, half of a broken 0): one glyph; two full-height
            # glyphs overlapping in x (a slanted 1 beside a 5) stay two
            short = min(b - t, s[3] - s[2]) < 0.6 * tall
            if overlap >= 0.5 * min(r - l, s[1] - s[0]) and short:
                g.append(int(j))
                s[:] = [min(s[0], l), max(s[1], r), min(s[2], t), max(s[3], b)]
                break
        else:
            groups.append([int(j)])
            spans.append([l, r, t, b])
    heights = np.array([s[3] - s[2] for s in spans], float)
    height = float(np.median(heights[heights >= 0.5 * heights.max()]))
    pieces: list[_Piece] = []
    for gi, (g, s) in enumerate(sorted(zip(groups, spans), key=lambda p: p[1][0])):
        left, right, top, bottom = s
        cuts: list[int] = []
        costs = [0]
        if right - left > CUT_WIDTH * height:
            crop = np.isin(labels[top:bottom, left:right], np.array(g) + 1) & (ink[top:bottom, left:right] > 0.3)
            found = _cuts(crop.sum(axis=0).astype(float), height)
            cuts = [left + c for c in found]
            # strokes crossed by the cut: runs of ink down the column (the fewest of it and its neighbours)
            runs = np.count_nonzero(np.diff(np.pad(crop, ((1, 0), (0, 0))).astype(np.int8), axis=0) == 1, axis=0)
            costs += [max(1, int(runs[max(0, c - 1) : c + 2].min())) for c in found]
        edges = [left, *cuts, right]
        for k in range(len(edges) - 1):
            pieces.append(_Piece(edges[k], edges[k + 1], g, gi, cut_before=costs[k]))
    return pieces, height


def _cuts(profile: np.ndarray, height: float) -> list[int]:
    """Candidate cut columns of a wide component: the minima of its (smoothed) vertical ink projection, at
    least :data:`CUT_MARGIN` of the height from its ends and :data:`CUT_SPACING` from each other, weakest first,
    up to one per 0.3 height."""
    w = profile.size
    smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
    margin = max(2, int(CUT_MARGIN * height))
    cand = [x for x in range(margin, w - margin) if smooth[x] <= smooth[x - 1] and smooth[x] <= smooth[x + 1]]
    cand.sort(key=lambda x: smooth[x])
    chosen: list[int] = []
    most = max(1, int(w / (0.3 * height)))
    for x in cand:
        if all(abs(x - c) >= CUT_SPACING * height for c in chosen):
            chosen.append(x)
        if len(chosen) >= most:
            break
    if not chosen and w > 1.4 * height:  # no valley: cut evenly (two glyphs pressed into one blot)
        n = int(round(w / (0.7 * height)))
        chosen = [int(w * k / n) for k in range(1, n)]
    return sorted(chosen)


def _piece_masks(labels: np.ndarray, boxes: np.ndarray, pieces: list[_Piece]) -> list[tuple[int, np.ndarray]]:
    """Each piece's own ink mask (its components, within its columns) and the row it starts at: found once per
    line, as every candidate character made of the piece reuses it (``np.isin`` over the picture's labels was a
    tenth of the reading's time when each candidate found its own)."""
    out = []
    for p in pieces:
        top = max(0, int(boxes[p.comps, 0].min()) - 1)  # the labels were grown a pixel beyond the boxes
        bottom = min(labels.shape[0], int(boxes[p.comps, 2].max()) + 1)
        out.append((top, np.isin(labels[top:bottom, p.left : p.right], np.array(p.comps) + 1)))
    return out


def _segment_ink(
    ink: np.ndarray, pieces: list[_Piece], masks: list[tuple[int, np.ndarray]]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The ink of consecutive ``pieces`` (their components, within their columns) cropped to it, and its box;
    ``masks``, the pieces' :func:`_piece_masks`."""
    left, right = min(p.left for p in pieces), max(p.right for p in pieces)  # a group may lie inside another's span
    top = min(t for t, _ in masks)
    mask = np.zeros((max(t + m.shape[0] for t, m in masks) - top, right - left), bool)
    for p, (t, m) in zip(pieces, masks):
        mask[t - top : t - top + m.shape[0], p.left - left : p.right - left] |= m
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return np.zeros((1, right - left), np.float32), (0, left, 1, right)
    first, last = int(rows[0]), int(rows[-1]) + 1
    crop = np.where(mask[first:last], ink[top + first : top + last, left:right], 0.0).astype(np.float32)
    return crop, (top + first, left, top + last, right)


def _model_input(crop: np.ndarray, config: ImageConfig) -> np.ndarray:
    """A character's ink (ink = 1) -> the model's input, as :mod:`glyphlab.data.images` prepares one glyph."""
    if config.clean and config.stroke is not None:
        from glyphlab.data.cleanup import normalise_stroke

        crop = normalise_stroke(crop, (0, 0, crop.shape[0], crop.shape[1]), config.stroke)
    pixels = _fit(crop, config)
    if config.binary:
        pixels = (pixels >= 0.5).astype(np.float32)
    return pixels
