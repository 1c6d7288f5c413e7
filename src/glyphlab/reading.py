"""Reading a line of handwritten characters (a number, a code) with a glyph model: ``glyphlab read``, ``gl.read``.

A glyph model reads one character; a picture of "2024" holds four. :func:`read` finds the ink of the whole
line (:func:`glyphlab.data.cleanup.find_line`: light, paper, rulings and specks taken away as for one glyph),
and reads it as segmentation-recognition systems for digit strings do:

1. **lines**: rows of ink separated by a horizontal gap; a short band beside a tall one (a 5's bar lifted
   high) belongs to it; several tall bands are several lines, read one by one (or refused: ``lines="one"``);
2. **pieces**: connected components, those overlapping in x merged (a 5's bar, a 4 in two strokes); a
   piece wider than a character is given candidate cuts at the minima of its vertical ink projection;
3. **lattice**: every run of up to :data:`MAX_PIECES` consecutive pieces is a candidate character, cropped
   and prepared with the model's own recorded input config (the same crop, stroke, fit and centring as one
   glyph gets in :mod:`glyphlab.data.images`) and classified, all in one batch;
4. **best path**: the score of a path is the sum of its characters' log-probabilities, less a cost for each
   cut made through ink, for a character much wider than the line is tall, and for joining separate
   components side by side; a beam over the lattice keeps the best paths, so a ``charset``, an exact
   ``length`` or a regex ``pattern`` (a postcode's ``\\d{5}``) picks the best path that satisfies it.

Each character comes with its box (in the picture's pixels), label, probability and runner-up; the string's
confidence is the product of its characters' probabilities.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from glyphlab.data.images import (
    DecodeLimits,
    ImageConfig,
    ImageInputError,
    NoInkError,
    _fit,
    decode_image,
    read_image_file,
    to_pixels,
)
from glyphlab.errors import ConfigError

#: most pieces one character may be made of (a whole component is always a candidate)
MAX_PIECES = 5
#: The costs below (CUT, CROSS, JOIN, SHORT) were set by a random search over the path score on 600 strings of
#: MNIST *training* digits made as bench/read.py makes them (seed 2000), and checked on strings of test digits
#: of development seeds (101, 7), never on the benchmark's seed
#: log-probability cost of a cut through a component's ink where it crosses one stroke (touching glyphs
#: touch at a point) ...
CUT_COST = 0.0
#: ... and for each further stroke the cut crosses (a cut through a 0 or a 2 crosses two or three)
CROSS_COST = 0.6
#: ... of reading two separate components side by side as one character
JOIN_COST = 0.6
#: a character wider than this share of the line's height pays for it (MNIST's digits: 95 % are at most
#: 1.1 times as wide as tall, 99 % 1.4)
WIDE = 0.9
#: ... this much per unit of the excess (about the log of how rare such widths are)
WIDE_COST = 3.0
#: a character less tall than this share of the line's height pays for it (a 5's bar is no character)
SHORT = 0.8
#: ... this much per unit of the shortfall
SHORT_COST = 30.0
#: a component is given candidate cuts when it is wider than this share of the line's height
CUT_WIDTH = 0.85
#: candidate cuts lie at least this share of the line's height from a component's ends ...
CUT_MARGIN = 0.18
#: ... and from each other
CUT_SPACING = 0.2
#: most pieces one line may have (a page of text or of specks is not a number: refused, not read for seconds)
MAX_LINE_PIECES = 160
#: the paths are scored with the model's probabilities softened by this temperature (p ** (1 / T),
#: renormalised): a glyph model is as sure of a fragment or of two glyphs squeezed into one box as of a
#: glyph, so its confidence is weighed against the shapes rather than above them (the characters' reported
#: probabilities are the model's own)
TEMPERATURE = 4.0
#: each candidate is classified as it is and shifted by one pixel up, down, left and right, and the
#: probabilities' geometric mean is used (a character cut out of a line sits less exactly in its box than an
#: MNIST digit in its own)
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
#: how many labels of each candidate character the beam tries, and how many paths it keeps per node
LABELS_PER_CHAR, BEAM = 3, 8

NO_INK = (
    "no ink: the image is blank (nothing stands out from its background), so there is nothing to read; "
    "write or photograph a number or a code"
)
SEVERAL_LINES = (
    "several lines: the picture holds {n} lines of writing one above the other; crop it to one "
    "line, or read each line (lines='each', the default; glyphlab read prints one string per line)"
)


class SeveralLinesError(ImageInputError):
    """The picture holds several lines of writing, and one line was asked for."""


@dataclass(frozen=True)
class Char:
    """One character read: ``box`` (top, left, bottom, right) in the picture's pixels, exclusive ends."""

    label: str
    probability: float
    runner_up: str | None
    runner_up_probability: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Line:
    text: str
    confidence: float  #: the product of the characters' probabilities
    chars: list[Char]
    matches: bool = True  #: the constraints (charset, length, pattern) are met; else the best reading anyway


@dataclass(frozen=True)
class Reading:
    """What :func:`read` found in one picture: one :class:`Line` per line of writing, top to bottom."""

    source: str
    lines: list[Line]
    note: str = ""
    #: each character's model input, in the order of :attr:`chars` (what was classified: for its explanation)
    inputs: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def confidence(self) -> float:
        return float(np.prod([line.confidence for line in self.lines])) if self.lines else 0.0

    @property
    def chars(self) -> list[Char]:
        return [c for line in self.lines for c in line.chars]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "text": self.text,
            "confidence": self.confidence,
            "lines": [asdict(line) for line in self.lines],
            **({"note": self.note} if self.note else {}),
        }


# -- constraints ---------------------------------------------------------------------------------------------
def parse_charset(charset: str | None, classes: Sequence[str]) -> np.ndarray | None:
    """A charset like ``0-9``, ``A-Z0-9`` or ``0123456789`` -> a boolean mask over ``classes`` (None: all)."""
    if charset is None or charset == "":
        return None
    allowed: set[str] = set()
    i = 0
    while i < len(charset):
        if i + 2 < len(charset) and charset[i + 1] == "-":
            a, b = charset[i], charset[i + 2]
            if ord(a) > ord(b):
                raise ConfigError(f"charset range {a}-{b} runs backwards")
            allowed.update(chr(c) for c in range(ord(a), ord(b) + 1))
            i += 3
        else:
            allowed.add(charset[i])
            i += 1
    mask = np.array([c in allowed for c in classes])
    if not mask.any():
        raise ConfigError(f"charset {charset!r} allows none of the model's classes ({', '.join(classes)})")
    return mask


# -- the picture's ink, its lines and pieces ------------------------------------------------------------------
def _line_bands(labels: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """The components (0-based ids) of each line, top to bottom: bands of rows with ink, separated by empty
    rows; a band less than 0.45 as tall as the tallest is joined to its nearest tall band."""
    rows = np.zeros(labels.shape[0] + 1, bool)
    for t, _, b, _ in boxes:
        rows[t:b] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[False], rows])))
    bands = [(edges[i], edges[i + 1]) for i in range(0, len(edges) - 1, 2)]
    if len(bands) <= 1:
        return [np.arange(len(boxes))]
    tallest = max(b - t for t, b in bands)
    tall = [i for i, (t, b) in enumerate(bands) if b - t >= 0.45 * tallest]
    owner = {}
    for i, (t, b) in enumerate(bands):
        if i in tall:
            owner[i] = i
        else:
            mid = (t + b) / 2
            owner[i] = min(tall, key=lambda j: min(abs(mid - bands[j][0]), abs(mid - bands[j][1])))
    centre = (boxes[:, 0] + boxes[:, 2]) / 2
    band_of = np.array([next(i for i, (t, b) in enumerate(bands) if t <= c < b + 1) for c in centre])
    return [np.flatnonzero(np.array([owner[int(k)] for k in band_of]) == i) for i in tall]


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


def _segment_ink(
    ink: np.ndarray, labels: np.ndarray, pieces: list[_Piece]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The ink of consecutive ``pieces`` (their components, within their columns) cropped to it, and its box."""
    left, right = min(p.left for p in pieces), max(p.right for p in pieces)  # a group may lie inside another's span
    region_labels = labels[:, left:right]
    mask = np.zeros(region_labels.shape, bool)
    for p in pieces:
        cols = slice(p.left - left, p.right - left)
        mask[:, cols] |= np.isin(region_labels[:, cols], np.array(p.comps) + 1)
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return np.zeros((1, right - left), np.float32), (0, left, 1, right)
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    crop = np.where(mask[top:bottom], ink[top:bottom, left:right], 0.0).astype(np.float32)
    return crop, (top, left, bottom, right)


def _model_input(crop: np.ndarray, config: ImageConfig) -> np.ndarray:
    """A character's ink (ink = 1) -> the model's input, as :mod:`glyphlab.data.images` prepares one glyph."""
    if config.clean and config.stroke is not None:
        from glyphlab.data.cleanup import normalise_stroke

        crop = normalise_stroke(crop, (0, 0, crop.shape[0], crop.shape[1]), config.stroke)
    pixels = _fit(crop, config)
    if config.binary:
        pixels = (pixels >= 0.5).astype(np.float32)
    return pixels


# -- the best path -------------------------------------------------------------------------------------------
def _best_paths(
    n: int,
    segs: dict[tuple[int, int], tuple[float, list[tuple[float, int]]]],
    classes: Sequence[str],
    length: int | None,
    pattern: re.Pattern | None,
    beam: int,
) -> list[tuple[float, list[tuple[int, int, int]]]]:
    """Paths through nodes 0..n, best first: (score, [(i, j, class index)]). ``segs[(i, j)]`` is the segment's
    shape cost and its (log p, class) options. Per node the beam keeps ``beam`` paths per length."""
    states: list[dict[int, list[tuple[float, list]]]] = [dict() for _ in range(n + 1)]
    states[0][0] = [(0.0, [])]
    for i in range(n):
        for count, paths in states[i].items():
            if length is not None and count >= length:
                continue
            for j in range(i + 1, min(n, i + MAX_PIECES) + 1):
                seg = segs.get((i, j))
                if seg is None:
                    continue
                cost, options = seg
                bucket = states[j].setdefault(count + 1, [])
                for s, path in paths:
                    for lp, c in options:
                        bucket.append((s + lp - cost, path + [(i, j, c)]))
                if len(bucket) > 4 * beam:
                    bucket.sort(key=lambda p: -p[0])
                    del bucket[beam:]
        for bucket in states[i + 1].values():
            bucket.sort(key=lambda p: -p[0])
            del bucket[beam:]
    ends = [p for count, paths in states[n].items() if length is None or count == length for p in paths]
    ends.sort(key=lambda p: -p[0])
    if pattern is not None:
        ends = [p for p in ends if pattern.fullmatch("".join(classes[c] for _, _, c in p[1]))]
    return ends


def _shape_cost(left_cut: int, right_cut: int, join: bool, width: float, height: float) -> float:
    """What a candidate character's shape costs (log-probability units): half of each cut at its ends (the
    character on the other side pays the other half), joining two components, being wider or less tall than
    a character of the line (``width``, ``height``: shares of the line's height)."""
    cost = sum(0.0 if runs == 0 else (CUT_COST + CROSS_COST * (runs - 1)) / 2 for runs in (left_cut, right_cut))
    cost += JOIN_COST if join else 0.0
    cost += WIDE_COST * max(0.0, width - WIDE)
    return cost + SHORT_COST * max(0.0, SHORT - height)


def _lattice(predictor, ink: np.ndarray, labels: np.ndarray, boxes: np.ndarray, mass: np.ndarray, ids: np.ndarray):
    """The candidate characters of one line: node count, per candidate (i, j, left cut, right cut, join, width,
    height), its box at the work scale, and the model's probabilities for all of them and their inputs (one
    batch)."""
    pieces, height = _pieces(ink, labels, boxes, mass, ids)
    n = len(pieces)
    if n > MAX_LINE_PIECES:
        raise ImageInputError(
            f"the line has {n} pieces of ink, more than the {MAX_LINE_PIECES} a line of characters "
            "is read with; crop the picture to the number or code"
        )
    feats, crops, geo = [], [], []
    for i in range(n):
        for j in range(i + 1, n + 1):
            run = pieces[i:j]
            width = run[-1].right - run[0].left
            groups = {p.group for p in run}
            whole = len(groups) == 1 and run[0].cut_before == 0 and (j == n or pieces[j].cut_before == 0)
            if len(groups) > 2:
                break
            if not whole and (j - i > MAX_PIECES or (j - i > 1 and width > 1.6 * height)):
                continue
            if len(groups) == 2:
                k = next(k for k in range(1, len(run)) if run[k].group != run[k - 1].group)
                if run[k].left - run[k - 1].right > 0.15 * height:
                    continue
            crop, box = _segment_ink(ink, labels, run)
            feats.append(
                (
                    i,
                    j,
                    pieces[i].cut_before,
                    pieces[j].cut_before if j < n else 0,
                    len(groups) == 2,
                    (box[3] - box[1]) / height,
                    (box[2] - box[0]) / height,
                )
            )
            crops.append(_model_input(crop, predictor.image_config))
            geo.append(box)
    batch = np.stack(crops)
    return n, feats, geo, _classify(predictor, batch), batch


def _classify(predictor, batch: np.ndarray) -> np.ndarray:
    """The model's probabilities for a batch of inputs, each the geometric mean over its :data:`SHIFTS`."""
    if len(SHIFTS) <= 1:
        return predictor.predict(batch).astype(np.float64)
    shifted = np.concatenate([np.roll(batch, shift, axis=(-2, -1)) for shift in SHIFTS])
    logp = np.log(np.maximum(predictor.predict(shifted).astype(np.float64), 1e-12))
    mean = np.exp(logp.reshape(len(SHIFTS), len(batch), -1).mean(axis=0))
    return mean / mean.sum(axis=1, keepdims=True)


def _read_line(
    predictor,
    ink: np.ndarray,
    labels: np.ndarray,
    boxes: np.ndarray,
    mass: np.ndarray,
    ids: np.ndarray,
    scale: float,
    allowed: np.ndarray | None,
    length: int | None,
    pattern: re.Pattern | None,
) -> tuple[Line, list[np.ndarray]]:
    """One line's best reading, and its characters' model inputs."""
    n, feats, geo, probs, batch = _lattice(predictor, ink, labels, boxes, mass, ids)
    spans = [(f[0], f[1], _shape_cost(*f[2:])) for f in feats]
    if allowed is not None:
        probs = probs * allowed
        probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    soft = np.maximum(probs, 1e-12) ** (1.0 / TEMPERATURE)
    logp = np.log(soft / soft.sum(axis=1, keepdims=True))
    k = min(LABELS_PER_CHAR if pattern is None and length is None else len(predictor.classes), probs.shape[1])
    segs = {}
    index = {}
    for s, (i, j, cost) in enumerate(spans):
        top = np.argsort(-logp[s], kind="stable")[:k]
        segs[(i, j)] = (cost, [(float(logp[s, c]), int(c)) for c in top if allowed is None or allowed[c]])
        index[(i, j)] = s
    constrained = length is not None or pattern is not None
    paths = _best_paths(n, segs, predictor.classes, length, pattern, beam=64 if constrained else BEAM)
    matches = bool(paths)
    if not paths:  # nothing satisfies the constraints: the best reading, marked
        paths = _best_paths(n, segs, predictor.classes, None, None, beam=BEAM)
    _, path = paths[0]
    chars = []
    for i, j, c in path:
        s = index[(i, j)]
        p = probs[s]
        order = np.argsort(-p, kind="stable")
        second = int(order[0] if order[0] != c else order[1]) if p.size > 1 else None
        t, l, b, r = geo[s]
        box = tuple(int(round(v / scale)) for v in (t, l, b, r))
        chars.append(
            Char(
                predictor.classes[c],
                float(p[c]),
                predictor.classes[second] if second is not None else None,
                float(p[second]) if second is not None else 0.0,
                box,
            )
        )  # type: ignore[arg-type]
    text = "".join(ch.label for ch in chars)
    inputs = [batch[index[(i, j)]] for i, j, _ in path]
    return Line(text, float(np.prod([ch.probability for ch in chars])), chars, matches), inputs


# -- the front door ------------------------------------------------------------------------------------------
def _pixels(image: Any, limits: DecodeLimits) -> tuple[np.ndarray, str, float]:
    """The picture's pixels, its name, and their size over the picture's (``to_pixels`` shrinks a large picture
    to its work side; the characters' boxes are given in the picture's own pixels)."""
    if isinstance(image, (str, Path)):
        im = read_image_file(image, limits)
        source = str(image)
    elif isinstance(image, (bytes, bytearray)):
        im = decode_image(bytes(image), limits)
        source = "<bytes>"
    elif isinstance(image, Image.Image):
        im, source = image, "<image>"
    else:
        arr = np.asarray(image, dtype=np.float32)
        if arr.ndim not in (2, 3) or arr.size == 0:
            raise ImageInputError(
                f"expected an image file, bytes, a PIL image or an (H, W) array, got shape {arr.shape}"
            )
        return arr.clip(0, 1), "<array>", 1.0
    try:
        pixels = to_pixels(im, colour=True)
        return pixels, source, max(pixels.shape[:2]) / max(im.size)
    finally:
        if im is not image:
            im.close()


def read_one(
    predictor,
    image: Any,
    *,
    charset: str | None = None,
    length: int | None = None,
    pattern: str | None = None,
    lines: str = "each",
    limits: DecodeLimits = DecodeLimits(),
    ink_dark: bool | None = None,
) -> Reading:
    """One picture -> its :class:`Reading`; :class:`NoInkError` when blank, :class:`SeveralLinesError` with
    ``lines="one"`` when it holds several lines. ``ink_dark`` overrides the model's polarity (an array of
    ink = 1 pixels: False)."""
    from glyphlab.data.cleanup import find_line

    if lines not in ("each", "one"):
        raise ConfigError(f"lines must be 'each' or 'one', got {lines!r}")
    allowed = parse_charset(charset, predictor.classes)
    regex = _compile(pattern)
    pixels, source, shrink = _pixels(image, limits)
    polarity = predictor.image_config.polarity
    if ink_dark is None and polarity != "auto":
        ink_dark = polarity == "dark-on-light"
    found = find_line(pixels, ink_dark=ink_dark)
    if found.no_ink:
        raise NoInkError(NO_INK if source.startswith("<") else f"{source}: {NO_INK}")
    bands = _line_bands(found.labels, found.boxes)
    if len(bands) > 1 and lines == "one":
        raise SeveralLinesError(SEVERAL_LINES.format(n=len(bands)))
    lines_read = [
        _read_line(
            predictor,
            found.ink,
            found.labels,
            found.boxes,
            found.mass,
            ids,
            found.scale * shrink,
            allowed,
            length,
            regex,
        )
        for ids in bands
    ]
    out = [line for line, _ in lines_read]
    note = ""
    if not all(line.matches for line in out):
        note = "no reading satisfies the constraints (charset, length, pattern); the best reading is given"
    return Reading(source, out, note, [x for _, inputs in lines_read for x in inputs])


def explain_chars(reading: Reading, explainer, method: str = "auto", steps: int | None = None) -> list[dict]:
    """Each character's explanation, as ``POST /explanation`` gives one (``payload``): why its model input was
    read as its label and not as its runner-up, all characters in one batch. ``explainer`` an
    :class:`~glyphlab.evaluation.attributions.Explainer` of the reading's model."""
    from glyphlab.evaluation.attributions import payload

    chars = reading.chars
    if not chars:
        return []
    classes = list(explainer.classes)
    targets = None
    if all(c.runner_up is not None for c in chars):
        targets = np.array([[classes.index(c.label), classes.index(c.runner_up)] for c in chars])
    expl = explainer.explain(np.stack(reading.inputs), method, targets, steps=steps)  # type: ignore[arg-type]
    return [payload(expl, i) for i in range(len(chars))]


def _compile(pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"pattern {pattern!r} is not a regular expression: {exc}") from None


def read(
    model: Any,
    images: Any,
    charset: str | None = None,
    length: int | None = None,
    pattern: str | None = None,
    lines: str = "each",
) -> list[Reading]:
    """The text in each picture of handwriting: ``model`` a saved glyph model's folder or a
    :class:`~glyphlab.serving.predictor.Predictor`; ``images`` files, folders, bytes, PIL images or arrays
    (one or a list). ``charset`` (``"0-9"``), ``length`` and a regex ``pattern`` constrain the reading."""
    from glyphlab.serving.predictor import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor(model)
    if length is not None and length < 1:
        raise ConfigError(f"length must be at least 1, got {length}")
    if isinstance(images, (str, Path, bytes, bytearray, Image.Image)) or (
        isinstance(images, np.ndarray) and images.ndim == 2
    ):
        images = [images]
    expanded: list[Any] = []
    for item in images:
        if isinstance(item, (str, Path)) and Path(item).is_dir():
            from glyphlab.data.formats import IMAGE_SUFFIXES

            expanded.extend(sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            expanded.append(item)
    return [read_one(predictor, im, charset=charset, length=length, pattern=pattern, lines=lines) for im in expanded]


# -- measuring against labels (``glyphlab read --labels``) -------------------------------------------------------
def edit_ops(truth: str, read: str) -> list[tuple[str, str]]:
    """The aligned (true, read) characters of a minimal edit script: ``("5", "")`` a character missed,
    ``("", "5")`` one read in excess, ``("5", "6")`` a substitution, equal pairs kept."""
    n, m = len(truth), len(read)
    d = np.zeros((n + 1, m + 1), np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (truth[i - 1] != read[j - 1]))
    ops, i, j = [], n, m
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (truth[i - 1] != read[j - 1]):
            ops.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            ops.append((truth[i - 1], ""))
            i -= 1
        else:
            ops.append(("", read[j - 1]))
            j -= 1
    return ops[::-1]


@dataclass
class ReadScore:
    """Readings against their true strings: exact-string accuracy, character error rate (edit distance over
    the true strings' length), the most confused characters and one row per picture."""

    exact: float
    cer: float
    n: int
    confused: list[tuple[str, str, int]]  #: (true, read, count), "" a missed or excess character, most first
    rows: list[dict[str, Any]] = field(default_factory=list)


def read_labels(path: str | Path) -> dict[str, str]:
    """A labels CSV (``file,text`` with a header): file (relative to the CSV's folder) -> true text."""
    import csv

    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"file", "text"} <= set(reader.fieldnames):
                raise ConfigError(f"{path}: a labels CSV needs the columns file,text (got {reader.fieldnames})")
            return {str((path.parent / row["file"]).resolve()): (row["text"] or "") for row in reader}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the labels ({exc.strerror or exc})") from None


def score_readings(
    readings: Sequence[Reading], truth: dict[str, str], errors: dict[str, str] | None = None
) -> ReadScore:
    """Score ``readings`` (and pictures that could not be read: ``errors``, source -> message, counted as read
    empty) against ``truth`` (resolved path -> text); pictures without a label are left out."""
    from collections import Counter

    got = {str(Path(r.source).resolve()): r.text for r in readings}
    for source in errors or {}:
        got.setdefault(str(Path(source).resolve()), "")
    rows, edits, chars, confused = [], 0, 0, Counter()
    for key, text in got.items():
        if key not in truth:
            continue
        true = truth[key]
        ops = edit_ops(true, text)
        dist = sum(a != b for a, b in ops)
        confused.update((a, b) for a, b in ops if a != b)
        edits += dist
        chars += len(true)
        rows.append({"file": key, "true": true, "read": text, "exact": text == true, "edits": dist})
    if not rows:
        raise ConfigError(
            "none of the pictures read has a label in the labels CSV (its file column names them "
            "relative to the CSV's folder)"
        )
    exact = float(np.mean([r["exact"] for r in rows]))
    return ReadScore(
        exact, edits / max(1, chars), len(rows), [(a, b, c) for (a, b), c in confused.most_common(10)], rows
    )


def write_score(score: ReadScore, out: str | Path) -> list[Path]:
    """``out/readings.csv`` (one row per picture), ``out/confused.csv`` and ``out/misread.html`` (the misread
    pictures with what was read, self-contained)."""
    import base64
    import csv
    import html
    import io

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "readings.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["file", "true", "read", "exact", "edits"])
        w.writeheader()
        w.writerows(score.rows)
    with (out / "confused.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["true", "read", "count"])
        w.writerows(score.confused)
    items = []
    for row in [r for r in score.rows if not r["exact"]][:200]:
        try:
            with Image.open(row["file"]) as im:
                im = im.convert("RGB")
                im.thumbnail((480, 160))
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=80)
            src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        except OSError:
            src = ""
        items.append(
            f'<figure><img src="{src}" alt=""><figcaption>{html.escape(Path(row["file"]).name)}: '
            f"true <b>{html.escape(row['true'])}</b>, read <b>{html.escape(row['read'])}</b></figcaption></figure>"
        )
    confused = "".join(
        f"<tr><td>{html.escape(a) or '∅'}</td><td>{html.escape(b) or '∅'}</td><td>{c}</td></tr>"
        for a, b, c in score.confused
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>glyphlab read: misread pictures</title>"
        f"<style>body{{font-family:sans-serif;margin:2em}}figure{{display:inline-block;margin:.5em}}"
        f"img{{border:1px solid #ccc}}td{{padding:0 1em}}</style>"
        f"<h1>glyphlab read</h1><p>{score.n} pictures: exact-string accuracy {score.exact:.3f}, character "
        f"error rate {100 * score.cer:.2f} %</p><h2>Most confused (∅: missed or excess)</h2>"
        f"<table><tr><th>true</th><th>read</th><th>count</th></tr>{confused}</table>"
        f"<h2>Misread ({score.n - sum(r['exact'] for r in score.rows)})</h2>{''.join(items)}"
    )
    (out / "misread.html").write_text(page, encoding="utf-8")
    return [out / "readings.csv", out / "confused.csv", out / "misread.html"]
