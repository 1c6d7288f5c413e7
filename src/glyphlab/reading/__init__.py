"""Reading a line of handwritten characters (a number, a code) with a glyph model: ``glyphlab read``, ``gl.read``.

A glyph model reads one character; a picture of "2024" holds four. :func:`read` finds the ink of the whole
line (:func:`glyphlab.data.cleanup.find_line`: light, paper, rulings and specks taken away as for one glyph),
and reads it as segmentation-recognition systems for digit strings do:

1. **lines**: rows of ink separated by a horizontal gap; a short band beside a tall one (a 5's bar lifted
   high) belongs to it; several tall bands are several lines, read one by one (or refused: ``lines="one"``);
   a band of nothing but ruling cut off at the picture's edge is no line;
2. **pieces**: connected components, those overlapping in x merged (a 5's bar, a 4 in two strokes); a
   piece wider than :data:`~glyphlab.reading.costs.CUT_WIDTH` of the line's height (a 1 pressed into its
   neighbour may be narrower than a character) is given candidate cuts at the minima of its vertical ink
   projection;
3. **lattice**: every run of up to :data:`MAX_PIECES` consecutive pieces (and every whole component) is a
   candidate character, cropped and prepared with the model's own recorded input config (the same crop,
   stroke, fit and centring as one glyph gets in :mod:`glyphlab.data.images`) and classified, all in one batch;
4. **best path**: the score of a path is the sum of its characters' log-probabilities, less a cost for each
   cut made through ink, for a character much wider than the line is tall, and for joining separate
   components side by side; a beam over the lattice keeps the best paths, so a ``charset``, an exact
   ``length`` or a regex ``pattern`` (a postcode's ``\\d{5}``) picks the best path that satisfies it.

Each character comes with its box (in the picture's pixels), label, probability and runner-up; the string's
confidence is the share of the best paths' evidence (their scores, exponentiated) that reads its text, so a
doubtful cut or merge lowers it even when each character's probability is high
(:data:`~glyphlab.reading.costs.POSTERIOR_SCALE`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from glyphlab.data.images import (
    DecodeLimits,
    ImageInputError,
    NoInkError,
    decode_image,
    read_image_file,
    to_pixels,
)
from glyphlab.errors import ConfigError
from glyphlab.reading.decode import _read_line
from glyphlab.reading.results import NO_INK, SEVERAL_LINES, Char, Line, Reading, SeveralLinesError, parse_charset
from glyphlab.reading.score import ReadScore, edit_ops, read_labels, score_readings, write_score
from glyphlab.reading.segment import _line_bands

__all__ = [
    "Char",
    "Line",
    "ReadScore",
    "Reading",
    "SeveralLinesError",
    "edit_ops",
    "explain_chars",
    "parse_charset",
    "read",
    "read_labels",
    "read_one",
    "score_readings",
    "write_score",
]


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
    verify: bool = True,
) -> Reading:
    """One picture -> its :class:`Reading`; :class:`NoInkError` when blank, :class:`SeveralLinesError` with
    ``lines="one"`` when it holds several lines. ``ink_dark`` overrides the model's polarity (an array of
    ink = 1 pixels: False); ``verify=False`` scores the cuts without the learned verifier."""
    from glyphlab.data.cleanup import find_line
    from glyphlab.reading.verifier import shipped

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
            shipped() if verify else None,
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
    verify: bool = True,
) -> list[Reading]:
    """The text in each picture of handwriting: ``model`` a saved glyph model's folder or a
    :class:`~glyphlab.serving.predictor.Predictor`; ``images`` files, folders, bytes, PIL images or arrays
    (one or a list). ``charset`` (``"0-9"``), ``length`` and a regex ``pattern`` constrain the reading;
    ``verify=False`` scores the cuts without the learned verifier (:mod:`glyphlab.reading.verifier`)."""
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
    return [
        read_one(predictor, im, charset=charset, length=length, pattern=pattern, lines=lines, verify=verify)
        for im in expanded
    ]
