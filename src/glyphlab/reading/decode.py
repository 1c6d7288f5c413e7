"""The best path through the lattice of candidate characters (a beam over classifier and shape costs)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from glyphlab.data.images import (
    ImageConfig,
    ImageInputError,
)
from glyphlab.reading.costs import (
    BEAM,
    CROSS_COST,
    CUT_COST,
    DOUBT,
    JOIN_COST,
    LABELS_PER_CHAR,
    MAX_LINE_PIECES,
    MAX_PIECES,
    POSTERIOR_SCALE,
    SHIFTS,
    SHORT,
    SHORT_COST,
    TEMPERATURE,
    VERIFY_WEIGHT,
    WIDE,
    WIDE_COST,
)
from glyphlab.reading.results import Char, Line
from glyphlab.reading.segment import _model_input, _piece_masks, _pieces, _segment_ink
from glyphlab.reading.verifier import VERIFIER_CONFIG, Verifier, features


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
    # the segments leaving each node: a whole component cut into more than MAX_PIECES pieces (a wide 5 or 2) is
    # one of them, as the lattice has it
    leaving: list[list[int]] = [[] for _ in range(n + 1)]
    for i, j in sorted(segs):
        leaving[i].append(j)
    for i in range(n):
        for count, paths in states[i].items():
            if length is not None and count >= length:
                continue
            for j in leaving[i]:
                cost, options = segs[(i, j)]
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


def _lattice(
    predictor,
    ink: np.ndarray,
    labels: np.ndarray,
    boxes: np.ndarray,
    mass: np.ndarray,
    ids: np.ndarray,
    verifier: Verifier | None,
    cheap: bool = True,
):
    """The candidate characters of one line (see :func:`_candidates`), the model's probabilities for all of
    them (one batch), their inputs, and the verifier's log-probability that each is one whole character (zeros
    without a verifier). Every candidate stays in the lattice: one the verifier doubts (:data:`DOUBT`) is
    classified once, without the shifted copies, unless ``cheap=False`` (a length or pattern may need a path
    through it)."""
    configs = (predictor.image_config,) if verifier is None else (predictor.image_config, VERIFIER_CONFIG)
    n, feats, geo, batches = _candidates(configs, ink, labels, boxes, mass, ids)
    whole = np.zeros(len(feats))
    shift = np.ones(len(feats), bool)
    if verifier is not None:
        whole = verifier.log_whole(batches[-1], features(feats))
        if cheap and DOUBT > 0:
            shift = whole >= np.log(DOUBT)
    return n, feats, geo, _classify(predictor, batches[0], shift), batches[0], whole


def _candidates(
    configs: Sequence[ImageConfig],
    ink: np.ndarray,
    labels: np.ndarray,
    boxes: np.ndarray,
    mass: np.ndarray,
    ids: np.ndarray,
) -> tuple[int, list[tuple], list[tuple[int, int, int, int]], list[np.ndarray]]:
    """The candidate characters of one line: node count, per candidate (i, j, left cut, right cut, join, width,
    height), its box at the work scale, and their inputs prepared with each of ``configs`` (one batch each; a
    config given twice is prepared once)."""
    pieces, height = _pieces(ink, labels, boxes, mass, ids)
    n = len(pieces)
    if n > MAX_LINE_PIECES:
        raise ImageInputError(
            f"the line has {n} pieces of ink, more than the {MAX_LINE_PIECES} a line of characters "
            "is read with; crop the picture to the number or code"
        )
    feats, crops, geo = [], [], []
    masks = _piece_masks(labels, boxes, pieces)
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
            crop, box = _segment_ink(ink, run, masks[i:j])
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
            crops.append(crop)
            geo.append(box)
    prepared = {c: np.stack([_model_input(crop, c) for crop in crops]) for c in dict.fromkeys(configs)}
    return n, feats, geo, [prepared[c] for c in configs]


def _classify(predictor, batch: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """The model's probabilities for a batch of inputs, each the geometric mean over its :data:`SHIFTS` where
    ``shift`` (a mask; all by default) says so, the others classified once (one model call for all)."""
    if len(SHIFTS) <= 1:
        return predictor.predict(batch).astype(np.float64)
    shift = np.ones(len(batch), bool) if shift is None else shift
    sure, rest = batch[shift], batch[~shift]
    probs = predictor.predict(np.concatenate([np.roll(sure, s, axis=(-2, -1)) for s in SHIFTS] + [rest]))
    logp = np.log(np.maximum(probs[: len(SHIFTS) * len(sure)].astype(np.float64), 1e-12))
    mean = np.exp(logp.reshape(len(SHIFTS), len(sure), -1).mean(axis=0))
    out = np.empty((len(batch), probs.shape[1]))
    out[shift] = mean / mean.sum(axis=1, keepdims=True)
    out[~shift] = probs[len(SHIFTS) * len(sure) :]
    return out


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
    verifier: Verifier | None = None,
) -> tuple[Line, list[np.ndarray]]:
    """One line's best reading, and its characters' model inputs."""
    constrained = length is not None or pattern is not None
    n, feats, geo, probs, batch, whole = _lattice(predictor, ink, labels, boxes, mass, ids, verifier, not constrained)
    spans = [(f[0], f[1], _shape_cost(*f[2:]) - VERIFY_WEIGHT * w) for f, w in zip(feats, whole)]
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
    return Line(text, _posterior(paths, predictor.classes), chars, matches), inputs


def _posterior(paths: list[tuple[float, list[tuple[int, int, int]]]], classes: Sequence[str]) -> float:
    """The share of the kept ``paths`` (best first) that read the best path's text, each weighed by
    exp(:data:`POSTERIOR_SCALE` x its score): the string's confidence. Other cuts of the same text add to it;
    a merge or split that scores nearly as well, or a runner-up character, takes from it."""
    scores = np.array([s for s, _ in paths])
    weights = np.exp(POSTERIOR_SCALE * (scores - scores.max()))
    texts = ["".join(classes[c] for _, _, c in path) for _, path in paths]
    same = np.array([t == texts[0] for t in texts])
    return float(weights[same].sum() / weights.sum())
