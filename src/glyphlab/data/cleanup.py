"""Finding the glyph in a photo or scan: paper, light, rulings and specks taken away, the strokes' grey kept.

A picture of handwriting is not a glyph on a black canvas: the paper is cream or grey and lit unevenly, a
shadow crosses it, it is ruled or squared, the ink is blue or red, JPEG leaves noise, and the back of the
page may show through. :func:`find_glyph` turns such a picture into an ink map (ink = 1, paper = 0) that
holds only the glyph, with the steps document-image processing uses (OpenCV's morphology, Otsu's threshold
and connected components, all in C: a 150-160 px photo costs about 2 ms of CPU, a digital picture a fraction of that):

1. **flatten the light** per colour channel: the paper's brightness is estimated by a grey-level closing
   (a dilation then an erosion with a window wider than a stroke, which removes the strokes and keeps the
   paper with its gradients and shadow edges) on a reduced copy, and divided out; the ink is how much darker
   than its own paper a pixel is in its darkest channel, so a blue or red pen on cream paper counts as
   fully as black. A shadow narrower than that window (a finger's, a strip along the edge) is filled by
   the closing like a stroke: where a narrower window (still wider than the strokes) finds darker paper
   over whole patches, the ink is measured against that one;
2. **threshold with hysteresis**: Otsu's threshold on the flattened ink (at least a share of its peak, so
   faint rulings and a page's bleed-through stay below it) marks sure ink; weaker pixels count only where
   they touch sure ink (a stroke pressed lightly at one end stays whole);
3. **remove rulings**: pixels on long horizontal or vertical structures (lines of ruled and squared
   paper, box borders of forms; a few degrees of tilt tolerated) that are thin across them; a stroke that
   crosses a line keeps its pixels there, since across the line it is long;
4. **choose the glyph**: connected components; specks, the page's edge and a form's box (ink along all four
   sides of its bounding box and in its corners: a 7 along two of them is no box) dropped; blobs, flat bars,
   thin lines across the whole page and a shadow's piece coming in from the picture's edge only chosen when
   nothing else is there, and a thin line's piece never grown into the glyph; the component with the most
   ink, with every sizable one above or below it (a 5's bar, an i's dot, a 4 in two strokes). Other sizable
   components beside it are *other glyphs*: :attr:`Glyph.others` counts them, so a caller can say "several
   characters" instead of guessing.

The result keeps the flattened grey levels of the kept strokes (anti-aliased, as MNIST's are; a photo's
blurred edges made as steep as MNIST's, :data:`SHARPEN`), scaled so
that the ink's typical peak is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

#: the paper is estimated with a window of this share of the picture's short side: wider than any
#: stroke (which it removes), narrower than a shadow (which it keeps as paper's light)
PAPER_WINDOW = 0.2
#: ... widened up to this share for a marker's bold strokes
MAX_PAPER_WINDOW = 0.45
#: below this flattened ink peak (in units of the paper's brightness) a picture holds no glyph
MIN_INK = 0.2
#: a picture more than this share ink holds no glyph on paper (e.g. a polarity forced the wrong way)
MAX_INK_SHARE = 0.6
#: sure ink is at least this share of the ink's peak (rulings and bleed-through stay below)
SURE_SHARE = 0.42
#: weak ink (kept where it touches sure ink) is at least this share of the sure threshold
WEAK_SHARE = 0.5
#: a ruling spans at least this share of the picture's width (height)
LINE_SPAN = 0.6
#: pictures smaller than this (a side) are glyph crops: no rulings or shadows are looked for
MIN_PAGE_SIDE = 48
#: a shadow narrower than the paper window is flattened again with a window of this share of the short side
#: (or 2.5 times the widest strokes of the sure ink, if wider)
SHADOW_WINDOW = 0.08
#: ... where the narrow window's paper is darker than the wide one's by this share of the sure threshold
SHADOW_DEPTH = 0.4
#: ... over patches of this share of the short side (a shadow is broad; a stroke's junction or grain is not)
SHADOW_PATCH = 0.05
#: a grainy stroke (pencil, a felt pen on rough paper) is measured with its holes closed where closing them
#: adds this share of its pixels or more (a shadow's or a smooth stroke's mask gains a few per cent)
GRAIN_FILL = 1.1
#: weak ink in blobs wider than this share of the picture's short side is a shadow, not a stroke
THICK = 0.12
#: ... unless it is at least this share of the ink's peak (a marker's bold stroke)
WIDE_SHARE = 0.6
#: a component whose thickness is more than this share of its length is a blob, not a glyph's strokes
BLOB = 0.3
#: a form's box has ink along each side, in a band of this share of its size (a few degrees of tilt)
BOX_BAND = 0.12
#: components with less than this share of the main glyph's ink are specks
SPECK_SHARE = 0.06
#: separate components with at least this share of the main glyph's ink, beside it, are other glyphs
OTHER_SHARE = 0.3

#: a photo's (or a paper scan's) ink levels between these two shares of the strokes' peak are stretched over
#: 0..1: the lens, the camera's blur and JPEG spread a stroke's edge over several grey pixels, where MNIST's
#: digits (binary drawings anti-aliased once, when shrunk to 20 px) have a solid core and one soft pixel
#: (half their ink pixels grey against 0.8 of a photo's); centred on 0.5, the level the stroke's width is
#: measured at, so it stays as wide. A digital picture's edges are left as drawn.
SHARPEN = (0.3, 0.7)
#: pictures are reduced to at most this side before the glyph is looked for
WORK_SIDE = 384
#: a digital picture's ink peak is looked for among this many levels from the top before its histogram is made
TOP_LEVELS = 6

_SQUARE3 = np.ones((3, 3), np.uint8)  # a 3x3 neighbourhood, for morphology

cv2.setNumThreads(1)  # tiny images: threads cost more than they give, and servers run one per core


@dataclass(frozen=True)
class Glyph:
    """What :func:`find_glyph` found: ``ink`` (H, W) float32 in [0, 1] holding only the glyph (zeros when
    none), ``no_ink`` when nothing stands out from the paper, ``others``: separate glyph-sized ink beside it.
    The ink is kept as ``crop``, the part of the picture that holds any, at ``origin`` (top, left) in a
    picture of ``shape``; ``ink`` makes the whole picture of it."""

    crop: np.ndarray
    no_ink: bool
    others: int
    box: tuple[int, int, int, int] | None = None  #: the glyph's (top, left, bottom, right), exclusive ends
    ink_dark: bool = True  #: the ink was darker than the paper
    origin: tuple[int, int] = (0, 0)
    shape: tuple[int, int] = (0, 0)

    @property
    def ink(self) -> np.ndarray:
        """The glyph's ink in the whole (work) picture, zeros around it."""
        if self.crop.shape == self.shape:
            return self.crop
        whole = np.zeros(self.shape, np.float32)
        oy, ox = self.origin
        whole[oy : oy + self.crop.shape[0], ox : ox + self.crop.shape[1]] = self.crop
        return whole


def flatten_u8(image: np.ndarray, ink_dark: bool, window: float = PAPER_WINDOW) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 (or floats in [0, 1]) -> (H, W) uint8 ink: how much darker (``ink_dark``)
    or lighter than the local paper each pixel is, in its strongest channel, as a share of the paper's
    brightness (255 = as dark as black on this paper). The paper is estimated with a window of ``window`` of
    the picture's short side. In 8 bits: uint8 morphology is several times faster than float's, and the
    picture came as 8 bits anyway."""
    img = as_u8(image)
    if not ink_dark:
        img = cv2.bitwise_not(img)
    h, w = img.shape[:2]
    # the paper: a closing with a window of ``window`` of the picture's short side. Its dilation (which
    # removes the strokes) runs on a copy reduced to ~48 px a side, its erosion at full size, so a shadow's
    # hard edge comes back where it was instead of blurred into a band of false ink
    f = max(1.0, max(h, w) / 48.0)
    sh, sw = max(1, round(h / f)), max(1, round(w / f))
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA) if f > 1 else img
    k = max(3, round(window * min(sh, sw)) | 1)
    bright = cv2.dilate(small, np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE)
    if f > 1:
        bright = cv2.resize(bright, (w, h), interpolation=cv2.INTER_LINEAR)
    kf = int(round((k + 1) * f)) | 1
    paper = cv2.erode(bright, np.ones((kf, kf), np.uint8), borderType=cv2.BORDER_REPLICATE)
    ratio = cv2.divide(img, cv2.max(paper, 10), scale=255.0)  # saturates at 255 where brighter than paper
    return cv2.bitwise_not(_over_channels(ratio, cv2.min))


def as_u8(image: np.ndarray) -> np.ndarray:
    """A picture as uint8 (floats in [0, 1] scaled and rounded)."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        return img
    return cv2.convertScaleAbs(np.clip(img, 0.0, 1.0).astype(np.float32, copy=False), alpha=255.0)


def _over_channels(image: np.ndarray, op) -> np.ndarray:
    """A (H, W, C) picture's channels folded with ``op`` (cv2.min: the darkest, cv2.max: the lightest);
    a (H, W) one as it is."""
    if image.ndim == 2:
        return image
    channels = cv2.split(image)
    out = channels[0]
    for c in channels[1:]:
        out = op(out, c)
    return out


def dark_ink(image: np.ndarray) -> bool:
    """Whether the ink is darker than the paper. The paper is the local majority: a median filter wider
    than a stroke keeps it (with its shadow edges, which a median preserves) and drops the strokes, whatever
    their polarity; the ink is what lies far from it, on one side. A border's or a picture's median, which
    a shadow or a bright band fools, is not asked."""
    img = as_u8(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    h, w = img.shape
    f = max(1.0, max(h, w) / 64.0)
    u8 = cv2.resize(img, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA) if f > 1 else img
    k = max(3, (min(u8.shape) // 2) | 1)
    # light multiplies (a shadowed page is the same page), so the contrast is a log ratio; a pixel counts
    # from a third darker or lighter than its paper, up to four times (near black a ratio means little)
    contrast = np.log((u8.astype(np.float32) + 8.0) / (cv2.medianBlur(u8, k).astype(np.float32) + 8.0))
    low, high = np.log(4 / 3), np.log(4.0)
    darker = float(np.clip(-contrast - low, 0, high).sum())
    lighter = float(np.clip(contrast - low, 0, high).sum())
    return darker >= lighter


@dataclass(frozen=True)
class _Page:
    """The components of a page's ink, before any is chosen (what :func:`find_glyph` and :func:`find_line` share)."""

    u8: np.ndarray  #: the flattened ink, uint8
    sure_t: float  #: the sure-ink threshold
    weak: np.ndarray  #: the ink mask after rulings and shadows (uint8 0/1)
    labels: np.ndarray  #: its connected components
    stats: np.ndarray  #: cv2's x, y, width, height, area per component
    mass: np.ndarray  #: ink per component; 0 for the background, components without sure ink, the page's
    #: edge and a form's box
    ink_dark: bool
    shape: tuple[int, int] = (0, 0)  #: the whole (work) picture's size; ``u8`` and the rest may be a crop of it
    origin: tuple[int, int] = (0, 0)  #: the crop's (top, left) in the whole picture
    digital: bool = False  #: drawn on a screen or exported (:func:`digital_background`): no lens blurred it
    page: bool = False  #: a photo or scan of a page, whole (not a glyph's crop): rulings and edges may be on it


def digital_background(image: np.ndarray) -> int | None:
    """The background level of a picture drawn on a screen or exported by a program (a canvas, a rendered
    glyph, MNIST's own PNGs): at least half its pixels exactly black or white (within 2 levels). A photo's or
    a scan's paper never is (noise, JPEG, light); those go through the whole clean step."""
    if image.ndim == 2:  # grey: every n-th pixel, made contiguous, is counted at SIMD speed
        flat = image.reshape(-1)
        sample = np.ascontiguousarray(flat[:: max(1, flat.size // 4096)])
        dark, light = np.count_nonzero(sample <= 2), np.count_nonzero(sample >= 253)
    else:  # every channel black (a yellow note is not white)
        pixels = image.reshape(image.shape[0] * image.shape[1], -1)
        sample = pixels[:: max(1, len(pixels) // 4096)]
        # channel by channel: NumPy's max(1) over 3 channels is a strided reduction, 0.5 ms of a photo's 2.5
        high, low = sample[:, 0].copy(), sample[:, 0].copy()
        for c in range(1, sample.shape[1]):
            np.maximum(high, sample[:, c], out=high)
            np.minimum(low, sample[:, c], out=low)
        dark, light = np.count_nonzero(high <= 2), np.count_nonzero(low >= 253)
    if 2 * dark >= len(sample):
        return 0
    if 2 * light >= len(sample):
        return 255
    return None


def _digital_ink(image: np.ndarray, ink_dark: bool) -> np.ndarray:
    """A digital picture's ink, uint8: how far each pixel is from the background, in its strongest channel."""
    img = _over_channels(image, cv2.min if ink_dark else cv2.max)
    return cv2.bitwise_not(img) if ink_dark else img.copy()


def _page(image: np.ndarray, ink_dark: bool | None, work_side: int, crop: bool = False) -> _Page:
    """Steps 1-3 of the module's docstring and the components; where no ink stands out from the paper (or
    it is all ink), ``weak``, ``labels``, ``stats`` and ``mass`` are None. ``crop``: a picture without a page
    (a digital one, a glyph's crop) is cut to its ink and a pixel around it before the components are looked
    for (everything outside is paper: the same components, masses and distances, on fewer pixels)."""
    image = as_u8(image)
    if max(image.shape[:2]) > work_side:  # a glyph needs no more; the steps' cost grows with the pixels
        f = work_side / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    background = digital_background(image)
    if background is not None:  # drawn on a screen or exported: no light, paper or rulings to take away
        ink_dark = background > 127 if ink_dark is None else ink_dark
        u8 = _digital_ink(image, ink_dark)
    else:
        if ink_dark is None:
            ink_dark = dark_ink(image)
        u8 = flatten_u8(image, ink_dark, PAPER_WINDOW)
    h, w = u8.shape
    peak, sure_t = _levels(u8, digital=background is not None)
    if peak < MIN_INK * 255:
        return _Page(u8, sure_t, None, None, None, None, ink_dark, (h, w))
    # a page, not a glyph's crop nor a digital canvas: rulings, shadows, edges may be on it
    page = background is None and min(h, w) >= MIN_PAGE_SIDE
    if page:  # a marker's bold strokes: a window not wider than them hollows them out
        bold = _bold_width(u8, max(sure_t, WIDE_SHARE * peak)) / min(h, w)
        if bold > 0.6 * PAPER_WINDOW:
            u8 = flatten_u8(image, ink_dark, min(MAX_PAPER_WINDOW, 2.5 * bold))
            peak, sure_t = _levels(u8)
        else:  # a shadow narrower than the window would be ink: the paper looked for again there
            narrowed = _narrow_shadows(image, ink_dark, u8, sure_t)
            if narrowed is not None:
                u8 = narrowed
                peak, sure_t = _levels(u8)
    _, weak = cv2.threshold(u8, WEAK_SHARE * sure_t, 1, cv2.THRESH_BINARY)
    area = cv2.countNonZero(weak)
    if area > MAX_INK_SHARE * weak.size:  # a page of ink is paper of the other polarity
        return _Page(u8, sure_t, None, None, None, None, ink_dark, (h, w))
    _, sure = cv2.threshold(u8, sure_t - 1, 1, cv2.THRESH_BINARY)
    origin, known = (0, 0), None
    if page:
        _clear_page(u8, weak, sure, peak, sure_t)
    elif crop:
        u8, weak, sure, origin, box = _crop_to_ink(u8, weak, sure)
        known = (area, box)
    n, labels, stats, mass = _components(weak, u8, sure, known)
    if page and n > 1:
        _drop_edges(labels, stats, mass)
    if n > 1:
        _drop_boxes(labels, stats, mass)
    return _Page(u8, sure_t, weak, labels, stats, mass, ink_dark, (h, w), origin, background is not None, page)


def _bold_width(u8: np.ndarray, level: float) -> float:
    """The widest strokes' width (:func:`stroke_width`) of the ink at ``level`` or above; a grainy stroke's
    (a pencil's, a felt pen's on rough paper: closing its holes adds :data:`GRAIN_FILL` of its pixels) with
    its holes closed, as the pen drew it, not as thin as the gaps between its grains."""
    _, strong = cv2.threshold(u8, level - 1, 1, cv2.THRESH_BINARY)
    closed = cv2.morphologyEx(strong, cv2.MORPH_CLOSE, _SQUARE3)
    if cv2.countNonZero(closed) >= GRAIN_FILL * cv2.countNonZero(strong):
        strong = closed
    return stroke_width(strong)


def _narrow_shadows(image: np.ndarray, ink_dark: bool, u8: np.ndarray, sure_t: float) -> np.ndarray | None:
    """``u8`` (the ink against the paper a :data:`PAPER_WINDOW` closing found) where a shadow, or a part of
    one, is narrower than that window (a strip along the picture's edge, a finger's tip, a shadow's corner):
    the closing filled it as if it were a stroke, made it ink and cut the strokes at its edge. There the ink
    is measured against the paper of a narrower window instead, in which the shadow is paper and the strokes
    inside it keep their own contrast. That window is :data:`SHADOW_WINDOW` of the short side, or 2.5 times
    the widest strokes of all the sure ink where wider (faint ones too: a faint bold glyph beside a dark
    printed box is no shadow). The parts: where the narrow window's paper is darker by :data:`SHADOW_DEPTH`
    of the sure threshold over whole patches of :data:`SHADOW_PATCH` (a shadow is broad), and a window's
    width around them (the strokes in them). None where there is no such part."""
    side = min(u8.shape)
    window = max(SHADOW_WINDOW, 2.5 * _bold_width(u8, sure_t) / side)
    if window >= PAPER_WINDOW:
        return None
    narrow = flatten_u8(image, ink_dark, window)
    _, zone = cv2.threshold(cv2.subtract(u8, narrow), SHADOW_DEPTH * sure_t, 1, cv2.THRESH_BINARY)
    patch = max(3, round(SHADOW_PATCH * side) | 1)
    zone = cv2.morphologyEx(zone, cv2.MORPH_OPEN, np.ones((patch, patch), np.uint8))
    if not cv2.countNonZero(zone):
        return None
    r = max(3, round(window * side) | 1)
    zone = cv2.dilate(zone, np.ones((r, r), np.uint8))
    return np.where(zone > 0, narrow, u8)


def _clear_page(u8: np.ndarray, weak: np.ndarray, sure: np.ndarray, peak: int, sure_t: float) -> None:
    """Rulings and a shadow's core (with the faint ink fading out of it) taken out of ``weak``, in place."""
    h, w = u8.shape
    weak[_rulings(u8, weak, stroke_width(sure)) > 0] = 0
    # a shadow's core is wide and weak, a stroke thin (or, a marker's, strong): ink wider than any
    # stroke and not near the peak is light, not ink
    r = max(3, round(THICK * min(h, w))) | 1
    wide = cv2.morphologyEx(weak, cv2.MORPH_OPEN, np.ones((r, r), np.uint8))
    light = (wide > 0) & (u8 < max(sure_t, WIDE_SHARE * peak))
    if light.any():  # and the weak ink that fades out of it (its penumbra, a finger's narrow tip)
        faint = weak & (1 - sure)
        nf, flabels = cv2.connectedComponents(faint, connectivity=8)
        touched = (
            np.bincount(flabels[cv2.dilate(light.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0], minlength=nf) > 0
        )
        touched[0] = False
        weak[touched[flabels]] = 0
        weak[light] = 0


def _crop_to_ink(
    u8: np.ndarray, weak: np.ndarray, sure: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int], tuple[int, int, int, int]]:
    """The three maps cut to ``weak``'s bounding box and a pixel of paper around it (the strokes' soft edges,
    and the paper a distance transform measures to), the cut's (top, left), and ``weak``'s bounding box (x, y,
    width, height) in the cut. The cut starts on even rows and columns: OpenCV labels components in 2x2
    blocks, so the same blocks keep the same labels' order."""
    x, y, bw, bh = cv2.boundingRect(weak)
    if bw == 0 or bh == 0:
        return u8, weak, sure, (0, 0), (x, y, bw, bh)
    h, w = u8.shape
    top, left = max(0, y - 1) & ~1, max(0, x - 1) & ~1
    bottom, right = min(h, y + bh + 1), min(w, x + bw + 1)
    cut = (slice(top, bottom), slice(left, right))
    return u8[cut], weak[cut], sure[cut], (top, left), (x - left, y - top, bw, bh)


def _components(
    weak: np.ndarray, u8: np.ndarray, sure: np.ndarray, known: tuple[int, tuple[int, int, int, int]] | None = None
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.connectedComponentsWithStats(weak, connectivity=8)``'s count, labels and stats (x, y, width,
    height, area), and each component's ink (sum of ``u8``; 0 for the paper, label 0, and for components
    without ``sure`` ink). OpenCV's per-pixel statistics cost several times its labelling: the boxes, areas and
    sums of a few components come cheaper from one comparison each (the paper's box is the whole picture
    here). The sums are of whole numbers, exact in float64 whatever their order. ``known``: ``weak``'s count
    and bounding box (x, y, width, height), where the caller has them."""
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    if n == 2:  # one component (a drawn glyph's, mostly): ``weak`` itself, and its sure ink ``sure`` (inside it)
        area, box = known if known is not None else (cv2.countNonZero(weak), cv2.boundingRect(weak))
        paper = (0, 0, weak.shape[1], weak.shape[0], weak.size - area)
        stats = np.array([paper, (*box, area)], np.int32)
        ink = cv2.sumElems(cv2.bitwise_and(u8, u8, mask=weak))[0] if cv2.countNonZero(sure) else 0.0
        return n, labels, stats, np.array([0.0, ink])
    if n > 8:  # a photo's specks: a Python loop over them costs more than OpenCV's statistics
        n, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
        return n, labels, stats, _masses(labels, n, u8, weak, sure)
    stats = np.empty((n, 5), np.int32)
    stats[0] = (0, 0, weak.shape[1], weak.shape[0], weak.size - cv2.countNonZero(weak))
    mass = np.zeros(n)
    for j in range(1, n):
        own = cv2.compare(labels, j, cv2.CMP_EQ) if n > 2 else weak
        stats[j] = (*cv2.boundingRect(own), cv2.countNonZero(own))
        if cv2.countNonZero(cv2.bitwise_and(sure, sure, mask=own)):
            mass[j] = cv2.sumElems(cv2.bitwise_and(u8, u8, mask=own))[0]
    return n, labels, stats, mass


def _masses(labels: np.ndarray, n: int, u8: np.ndarray, weak: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """The ink (sum of ``u8``) of each component, counted over the ink's pixels only (the paper is label 0);
    0 for the background and for components without sure ink."""
    on = weak.view(bool)
    lab = labels[on]
    mass = np.bincount(lab, weights=u8[on], minlength=n)
    mass[np.bincount(labels[sure.view(bool)], minlength=n) < 1] = 0.0
    mass[0] = 0.0
    return mass


def _drop_edges(labels: np.ndarray, stats: np.ndarray, mass: np.ndarray) -> None:
    """The page's edge (the table beside it): ink lying mostly in a strip along the picture's edges, and running
    on beyond the picture, or along it over half its side, or not reaching far out of the strip (its broken
    pieces); a glyph written near the edge (a 7 whose bar runs along the top) stays inside the picture, is
    shorter and reaches far in: mass 0, in place."""
    h, w = labels.shape
    n = len(mass)
    area, bw, bh = stats[:, 4], stats[:, 2], stats[:, 3]
    m = max(2, round(0.07 * min(h, w)))
    across = np.bincount(np.concatenate([labels[:m].ravel(), labels[-m:].ravel()]), minlength=n)  # top, bottom
    down = np.bincount(np.concatenate([labels[m:-m, :m].ravel(), labels[m:-m, -m:].ravel()]), minlength=n)
    x, y = stats[:, 0], stats[:, 1]
    beyond = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    along = np.where(across >= down, bw >= 0.5 * w, bh >= 0.5 * h)
    inside = np.where(across >= down, bh, bw) <= 3 * m
    mass[(across + down > 0.4 * area) & (beyond | along | inside)] = 0.0


def _drop_boxes(labels: np.ndarray, stats: np.ndarray, mass: np.ndarray) -> None:
    """A form's box round the glyph (:func:`_box_sides`, with little ink inside its sides): mass 0, in place."""
    area = stats[:, 4]
    for j, own, sides in _boxes(labels, stats, mass > 0):
        if cv2.countNonZero((own & ~sides).view(np.uint8)) < 0.25 * area[j]:
            mass[j] = 0.0


def _boxes(labels: np.ndarray, stats: np.ndarray, among: np.ndarray):
    """(label, its pixels in its box, its box's side bands) of each large component (a quarter of the picture
    each way, among ``among``) that :func:`_box_sides` finds a form's box in."""
    h, w = labels.shape
    if len(stats) > 8:  # a photo's specks: chosen at once
        big = np.flatnonzero((stats[:, 2] >= 0.25 * w) & (stats[:, 3] >= 0.25 * h) & among).tolist()
    else:  # a few components (one, mostly): in Python numbers, cheaper than NumPy's calls
        big = [j for j, s in enumerate(stats.tolist()) if s[2] >= 0.25 * w and s[3] >= 0.25 * h and among[j]]
    for j in big:
        if j == 0:
            continue
        x, y, bw, bh = stats[j, :4].tolist()
        box = labels[y : y + bh, x : x + bw]
        if not _corners_inked(box, j):  # most glyphs: no box, known from four small patches
            continue
        own = box == j
        sides = _box_sides(own)
        if sides is not None:
            yield j, own, sides


def _corners_inked(box: np.ndarray, j: int) -> bool:
    """Whether :func:`_box_sides` can find a box in component ``j`` of the labels ``box`` (cut to its bounding
    box; ``j=True`` for a component's own mask): its size holds the side bands, and all four corner patches hold
    its ink, without comparing the whole box's labels; most glyphs leave the first or second corner empty."""
    bh, bw = box.shape
    e = max(2, round(BOX_BAND * min(bh, bw)))
    if min(bh, bw) < 3 * e:
        return False
    return bool(
        (box[:e, :e] == j).any()
        and (box[:e, -e:] == j).any()
        and (box[-e:, :e] == j).any()
        and (box[-e:, -e:] == j).any()
    )


def _box_sides(own: np.ndarray) -> np.ndarray | None:
    """The side bands (bool, ``own``'s shape) of a rectangle drawn round a glyph, or None where ``own`` (a
    component's pixels in its bounding box) is none: a box's four sides run straight along its bounding box,
    so each band of 12 % of its size along an edge (wide enough for a few degrees of tilt) has ink over most
    of its length (a 7 has two such sides, a 0's round loop covers about two thirds of each), and all four
    corners hold ink (a round loop's do not)."""
    if not _corners_inked(own, True):  # the size and the corners first: most glyphs leave one empty
        return None
    e = max(2, round(BOX_BAND * min(own.shape)))
    covered = (own[:e].any(0).mean(), own[-e:].any(0).mean(), own[:, :e].any(1).mean(), own[:, -e:].any(1).mean())
    if min(covered) < 0.85:
        return None
    sides = np.zeros_like(own)
    sides[:e] = sides[-e:] = True
    sides[:, :e] = sides[:, -e:] = True
    return sides & own


def _second_choices(pg: _Page, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates shaped like no glyph, their ``mass`` cut to a tenth in place (chosen only when nothing else
    is there): a blob (a finger's shadow, a smudge: as thick as it is long and solid; a glyph's strokes are thin
    and leave most of their box empty, a bold 4's joint is thick, its box is not full), a flat bar (a form
    box's side, a ruling's piece, the page's edge), a thin line across the whole page (a margin's, a fold),
    and a shadow's piece (coming in from the picture's edge, its strokes twice as wide as those of a glyph
    inside the picture). Returns which are never counted as another glyph, and each candidate's widest
    stroke (0 for the rest)."""
    labels, n = pg.labels, len(mass)
    cands = np.flatnonzero(mass > 0)
    unlike, width = np.zeros(n, bool), np.zeros(n)
    if len(cands) <= 1:
        return unlike, width
    x, y, bw, bh, area = pg.stats.T
    dist = cv2.distanceTransform(pg.weak, cv2.DIST_L2, 3)
    thickness = 2.0 * (
        np.array([dist[y[j] : y[j] + bh[j], x[j] : x[j] + bw[j]][_own(labels, pg.stats, j)].max() for j in cands])
        if len(cands) <= 8
        else np.asarray(ndimage.maximum(dist, labels, cands))
    )
    thick = thickness > BLOB * np.maximum(bw[cands], bh[cands])
    blob = thick & (area[cands] > 0.6 * bw[cands] * bh[cands])
    bar = (bw[cands] >= 4 * bh[cands]) & (thickness <= 0.5 * bh[cands] + 2)
    if pg.page:
        H, W = pg.shape
        bar |= ((bh[cands] >= 0.9 * H) & (6 * bw[cands] < bh[cands])) | (
            (bw[cands] >= 0.9 * W) & (6 * bh[cands] < bw[cands])
        )
        blob |= _shadow_pieces(pg, cands, dist, ~(thick | bar), mass)
    mass[cands[blob | bar]] *= 0.1
    unlike[cands[thick | bar]] = True
    width[cands] = thickness
    return unlike, width


def _own(labels: np.ndarray, stats: np.ndarray, j: int) -> np.ndarray:
    """Component ``j``'s pixels in its bounding box."""
    x, y, bw, bh = stats[j, :4]
    return labels[y : y + bh, x : x + bw] == j


def _shadow_pieces(pg: _Page, cands: np.ndarray, dist: np.ndarray, glyphlike: np.ndarray, mass: np.ndarray):
    """Which of ``cands`` are a shadow's piece: reaching the picture's edge (a finger, a phone, the page's fold
    come in from outside it) with strokes (median width) at least twice as wide as those of a glyph-like
    candidate inside the picture holding at least 15 % of its ink. A glyph touching the edge beside a faint
    speck keeps its place: the speck has too little ink, or strokes as wide."""
    x, y, bw, bh = (pg.stats[cands, k] for k in range(4))
    H, W = pg.labels.shape
    edge = (x == 0) | (y == 0) | (x + bw == W) | (y + bh == H)
    if not edge.any() or edge.all():
        return np.zeros(len(cands), bool)
    median = 2.0 * np.asarray(ndimage.median(dist, pg.labels, cands))
    inside = ~edge & glyphlike
    out = np.zeros(len(cands), bool)
    for k in np.flatnonzero(edge):
        out[k] = bool((inside & (2 * median <= median[k]) & (mass[cands] >= 0.15 * mass[cands[k]])).any())
    return out


def find_glyph(image: np.ndarray, ink_dark: bool | None = None) -> Glyph:
    """The glyph in a photo or scan; see the module's docstring for the steps. ``ink_dark=None`` finds out
    whether the ink is darker or lighter than the paper (:func:`dark_ink`)."""
    pg = _page(image, ink_dark, WORK_SIDE, crop=True)
    if pg.mass is None or not (pg.mass > 0).any():
        return _no_glyph(pg)
    if len(pg.mass) == 2:  # one component, with sure ink: the glyph, alone
        return _one_glyph(pg)
    mass, u8, sure_t = pg.mass.copy(), pg.u8, pg.sure_t
    n = len(mass)
    x, y, bw, bh, area = pg.stats.T
    unlike, width = _second_choices(pg, mass)
    main = int(np.argmax(mass))
    if mass[main] <= 0:
        return _no_glyph(pg)
    keep = np.zeros(n, bool)
    keep[main] = True
    left, right = x[main], x[main] + bw[main]
    top, bottom = y[main], y[main] + bh[main]
    others = 0
    # grow the glyph by sizable components in its column (overlapping it horizontally), biggest first
    for j in np.argsort(-mass):
        if j == main or mass[j] < SPECK_SHARE * mass[main]:
            continue
        if (bw[j] > 1.2 * (right - left) and bh[j] * 6 < bw[j]) or (bh[j] > 1.2 * (bottom - top) and bw[j] * 6 < bh[j]):
            continue  # a bar longer than the glyph is wide (tall): what is left of a ruling or a form's box
        long = max(bw[j], bh[j])
        if long >= 5 * width[j] and area[j] <= 1.5 * long * width[j] and width[j] <= 0.6 * width[main]:
            continue  # a line (as much ink as one of its length, or a box's corner) thinner than the glyph's
            # strokes: a piece of a ruling or a form's box (a grainy pencil's piece has more ink for its length)
        overlap = min(right, x[j] + bw[j]) - max(left, x[j])
        near_v = max(y[j] - bottom, top - (y[j] + bh[j])) <= 0.35 * max(bottom - top, 1)
        if overlap >= 0.3 * min(bw[j], right - left) and near_v:
            keep[j] = True
            left, right = min(left, x[j]), max(right, x[j] + bw[j])
            top, bottom = min(top, y[j]), max(bottom, y[j] + bh[j])
        elif (
            not unlike[j]
            and mass[j] >= OTHER_SHARE * mass[main]
            and bh[j] >= 0.6 * (bottom - top)
            and min(bottom, y[j] + bh[j]) - max(top, y[j]) >= 0.5 * min(bh[j], bottom - top)
            and mass[j] / area[j] >= 0.6 * mass[main] / area[main]
        ):
            others += 1  # another glyph: as tall, on the same line, as strongly inked
    mask = cv2.dilate(_kept_mask(pg, keep), _SQUARE3)  # the soft edges
    oy, ox = pg.origin
    box = (int(top) + oy, int(left) + ox, int(bottom) + oy, int(right) + ox)
    ink = _kept_ink(u8, mask, sure_t, sharpen=not pg.digital, top=pg.digital)
    return Glyph(ink, False, others, box, pg.ink_dark, pg.origin, pg.shape)


def _one_glyph(pg: _Page) -> Glyph:
    """:func:`find_glyph`'s answer where the ink is one component (a drawn glyph's, mostly): it is kept whole,
    as the general choice keeps it, without its bookkeeping."""
    x, y, bw, bh, _ = pg.stats[1].tolist()
    oy, ox = pg.origin
    ink = _kept_ink(pg.u8, cv2.dilate(pg.weak, _SQUARE3), pg.sure_t, sharpen=not pg.digital, top=pg.digital)
    return Glyph(ink, False, 0, (y + oy, x + ox, y + bh + oy, x + bw + ox), pg.ink_dark, pg.origin, pg.shape)


def _no_glyph(pg: _Page) -> Glyph:
    return Glyph(np.zeros((0, 0), np.float32), True, 0, ink_dark=pg.ink_dark, shape=pg.shape)


def _kept_mask(pg: _Page, keep: np.ndarray) -> np.ndarray:
    """The mask (uint8, not 0 inside) of the components ``keep`` says (bool per label) are kept: the ink map itself
    where it is one component (a drawn glyph's, mostly: no labels to compare), else their labels'."""
    return pg.weak if len(keep) == 2 and keep[1] else _label_mask(pg.labels, np.flatnonzero(keep))


def _label_mask(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """uint8 mask (255) of the pixels whose label is one of ``ids`` (a few): one comparison each."""
    mask = cv2.compare(labels, int(ids[0]), cv2.CMP_EQ)
    for j in ids[1:]:
        mask = cv2.bitwise_or(mask, cv2.compare(labels, int(j), cv2.CMP_EQ))
    return mask


def _kept_ink(u8: np.ndarray, keep: np.ndarray, sure_t: float, sharpen: bool = False, top: bool = False) -> np.ndarray:
    """The ink where ``keep`` (0 elsewhere) as float32 in [0, 1], scaled so that its sure ink's 90th
    percentile is 1 (the strokes' typical peak, whatever the pen's strength). ``sharpen`` (a photo's or a
    scan's ink): the levels between :data:`SHARPEN`'s two are stretched over 0..1, see there. ``top`` (a
    digital picture's ink, drawn with one pen's level): that percentile is looked for from the top first."""
    mask = keep.view(np.uint8) if keep.dtype in (bool, np.uint8) else keep.astype(np.uint8)
    kept = cv2.bitwise_and(u8, u8, mask=mask)
    lowest = int(np.ceil(sure_t))  # the sure ink's levels only
    level = _top_percentile(kept, 90, lowest) if top else None
    if level is None:
        hist = cv2.calcHist([kept], [0], kept, [256], (0, 256)).ravel().astype(np.int64)  # its ink's levels (no 0s)
        hist[:lowest] = 0
        level = _percentile(hist, 90)
    return cv2.LUT(kept, _scale_table(level, sharpen))


@lru_cache(maxsize=512)
def _scale_table(level: int, sharpen: bool) -> np.ndarray:
    """:func:`_kept_ink`'s 256 levels scaled by ``level`` (float32, as the whole array's product would be), each
    computed once per process (read-only: shared by every picture with that level)."""
    scaled = np.minimum(np.arange(256, dtype=np.float32) * (1.0 / max(level, 1)), 1.0)
    if sharpen:
        lo, hi = SHARPEN
        scaled = np.clip((scaled - lo) * (1.0 / (hi - lo)), 0.0, 1.0).astype(np.float32)
    scaled.flags.writeable = False
    return scaled


def _histogram(u8: np.ndarray) -> np.ndarray:
    """The counts of a uint8 picture's 256 levels (``np.bincount(u8.ravel(), minlength=256)``, faster): the
    levels inside the box of its non-zero pixels, and the zeros outside it (a glyph's ink on a digital
    canvas, or kept alone, is a small part of its picture)."""
    x, y, w, h = cv2.boundingRect(u8)
    hist = np.zeros(256, np.int64)
    if w and h:
        hist += cv2.calcHist([u8[y : y + h, x : x + w]], [0], None, [256], (0, 256)).ravel().astype(np.int64)
    hist[0] += u8.size - w * h
    return hist


def _levels(u8: np.ndarray, digital: bool = False) -> tuple[int, float]:
    """The uint8 ink's peak (99.7th percentile) and the threshold of sure ink. ``digital``: the peak is looked
    for from the top first (:func:`_top_percentile`)."""
    # the ink's peak: the 99.7th percentile, or the level of the 40th strongest pixel where the glyph is
    # smaller than 0.3 % of the picture (a digit in the middle of a whole page): the higher of the two
    if u8.size > 300:
        q = max(99.7, 100.0 * (1 - 40 / u8.size))
        peak = _top_percentile(u8, q) if digital else None
        if peak is None:
            peak = _percentile(_histogram(u8), q)
    else:
        peak = int(u8.max())
    otsu, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return peak, max(otsu, SURE_SHARE * peak, MIN_INK * 255)


def _top_percentile(u8: np.ndarray, q: float, lowest: int = 0, levels: int = TOP_LEVELS) -> int | None:
    """:func:`_percentile` of ``u8``'s levels from ``lowest`` up where it is one of the ``levels`` highest, else
    None: counted down from 255, one threshold a level (a drawn glyph's peak is its pen's level, 250-255
    mostly), at a fraction of a histogram's cost (whose count of the paper's one level is a chain of
    dependent increments)."""
    if lowest > 0:
        _, counted = cv2.threshold(u8, lowest - 1, 1, cv2.THRESH_BINARY)
        total = cv2.countNonZero(counted)
    else:
        total = u8.size
    if not total:
        return None
    target = total * q / 100.0  # _percentile's float: the first level whose count up to it reaches this
    for level in range(255, max(255 - levels, lowest - 1), -1):  # none below ``lowest`` is counted
        _, above = cv2.threshold(u8, level - 1, 1, cv2.THRESH_BINARY)
        if total - cv2.countNonZero(above) < target:  # the levels below this one fall short: it is the one
            return level
    return None


def normalise_stroke(ink: np.ndarray, box: tuple[int, int, int, int], share: float) -> np.ndarray:
    """The glyph's strokes made about ``share`` of its longest side wide (MNIST's are 0.11 of the 20 px box:
    2.2 px), by a grey dilation or erosion at the picture's own resolution, when they are more than 40 %
    off: a hairline ballpoint or a bold marker is shown to the model as a pen like its training data's.
    Everything outside the box and the margin its strokes may grow into is 0 when they are changed."""
    t, l, b, r = box
    changed = _restroked(ink[t:b, l:r], box, ink.shape, share)
    if changed is None:
        return ink
    out, (top, left) = changed
    whole = np.zeros(ink.shape, np.float32)
    whole[top : top + out.shape[0], left : left + out.shape[1]] = out
    return whole


def glyph_ink(glyph: Glyph, share: float | None) -> np.ndarray:
    """:func:`find_glyph`'s ink cut to the pixels that hold any (the box and its strokes' soft edges, or the
    margin :func:`normalise_stroke` lets them grow into), strokes normalised when ``share`` is given: every
    pixel of ``normalise_stroke(glyph.ink, ...)`` that is not 0, without the whole picture, for a caller that
    crops to the ink anyway."""
    if glyph.box is None:  # no glyph: nothing to cut
        return glyph.ink
    t, l, b, r = glyph.box
    oy, ox = glyph.origin
    crop = glyph.crop  # holds the box and a pixel around it, cut to the picture
    changed = _restroked(crop[t - oy : b - oy, l - ox : r - ox], glyph.box, glyph.shape, share) if share else None
    if changed is not None:
        return changed[0]
    return crop[max(0, t - 1) - oy : b + 1 - oy, max(0, l - 1) - ox : r + 1 - ox]


def _restroked(
    crop: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int], share: float
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """:func:`normalise_stroke`'s work on the ink in the ``box`` of a picture of ``shape``: the restroked box
    and the margin the strokes grew into (cut to the picture), and its (top, left); None where they are kept."""
    t, l, b, r = box
    mask = (crop >= 0.5).astype(np.uint8)
    area = cv2.countNonZero(mask)
    if area < 12:
        return None
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    width = 2.0 * area / max(perimeter, 1.0)
    target = share * max(b - t, r - l)
    if 1 / 1.4 <= width / target <= 1.4:
        return None
    radius = round(abs(target - width) / 2)
    if radius < 1:
        return None
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    pad = radius + 1
    region = np.zeros((crop.shape[0] + 2 * pad, crop.shape[1] + 2 * pad), crop.dtype)  # np.pad(crop, pad), 10x cheaper
    region[pad:-pad, pad:-pad] = crop
    if width < target:
        out = cv2.dilate(region, kernel)
    else:
        out = cv2.erode(region, kernel)
        if out.sum() < 0.35 * region.sum():  # thinner than that, a bold glyph breaks apart: leave it
            return None
    h, w = shape
    top, left = max(0, t - pad), max(0, l - pad)  # out's first pixel lies at (t - pad, l - pad)
    cut = out[top - (t - pad) : min(h, b + pad) - (t - pad), left - (l - pad) : min(w, r + pad) - (l - pad)]
    return cut, (top, left)


def stroke_width(mask: np.ndarray) -> float:
    """The widest strokes' width in pixels: twice the mask's largest distances to the paper (their 99th
    percentile; a ruling is thinner and would drag any typical figure down, on ruled paper it has more
    pixels than the glyph)."""
    if not mask.any():
        return 1.0
    values = cv2.distanceTransform(mask, cv2.DIST_L2, 3)[mask > 0]
    k = int(0.99 * (values.size - 1))
    return float(2.0 * np.partition(values, k)[k])


def _percentile(hist: np.ndarray, q: float) -> int:
    """The q-th percentile of the values a 256-bin histogram counts."""
    cum = hist.cumsum()
    total = int(cum[-1])  # as a Python number: the same float64 target, without NumPy's scalar arithmetic
    return int(cum.searchsorted(total * q / 100.0)) if total else 0


def _rulings(ink: np.ndarray, mask: np.ndarray, stroke: float) -> np.ndarray:
    """Pixels of ``mask`` that a long horizontal or vertical structure explains and that are thin across it
    (1 = ruling). A line's strength at a pixel is the grey opening of the ink (uint8) along the line, after
    a small dilation across it (for a few degrees of tilt): the weakest ink over a window of
    :data:`LINE_SPAN` of the picture, so noise does not break it as it breaks a thresholded line. A stroke
    crossing the line is stronger than the line there, and long across it: it keeps its pixels."""
    h, w = ink.shape
    out = np.zeros_like(mask)
    explained_share = (ink.astype(np.uint16) * 6 + 9) // 10  # 0.6 of each pixel's ink
    for axis in (0, 1):  # 0: horizontal lines, 1: vertical
        span, across = (w, h) if axis == 0 else (h, w)
        length = max(8, int(LINE_SPAN * span))
        slack = max(1, round(across / 30))  # tolerate a few degrees of tilt
        thin = min(max(2, round(across / 40)), int(0.6 * stroke))  # a ruling is thinner than the strokes
        if thin < 1:
            continue
        along = (1, length) if axis == 0 else (length, 1)  # kernel rows, cols
        spread = (2 * slack + 1, 1) if axis == 0 else (1, 2 * slack + 1)
        thick = (thin + 1, 1) if axis == 0 else (1, thin + 1)
        gap = max(3, round(span / 20)) | 1  # a line broken by noise or a shadow's edge is bridged
        bridge = (1, gap) if axis == 0 else (gap, 1)
        band = cv2.morphologyEx(cv2.dilate(ink, np.ones(spread, np.uint8)), cv2.MORPH_CLOSE, np.ones(bridge, np.uint8))
        line = cv2.morphologyEx(band, cv2.MORPH_OPEN, np.ones(along, np.uint8))
        long_across = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones(thick, np.uint8))
        out |= (line >= explained_share) & (mask > 0) & (long_across == 0)
    return out.astype(np.uint8)


# -- a whole line of glyphs (``glyphlab read``) ------------------------------------------------------------------
#: a picture of a line is reduced to at most this side before its ink is looked for
LINE_WORK_SIDE = 512
#: components with less than this share of the strongest one's ink are specks (a 5's bar has more)
LINE_SPECK_SHARE = 0.03


@dataclass(frozen=True)
class LineInk:
    """What :func:`find_line` found in a picture of one or more lines of glyphs.

    ``ink`` (H, W) float32 in [0, 1] holds every kept component's strokes (zeros elsewhere), at the work scale;
    ``labels`` (H, W) int32 numbers the kept components 1..n (0: paper; the strokes' soft edges included);
    ``boxes`` (n, 4) their (top, left, bottom, right), exclusive ends; ``mass`` (n,) their ink; ``scale``: the
    work picture's size over the original's (boxes divided by it are in the original's pixels)."""

    ink: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    mass: np.ndarray
    no_ink: bool
    ink_dark: bool = True
    scale: float = 1.0


def find_line(image: np.ndarray, ink_dark: bool | None = None) -> LineInk:
    """The ink of every glyph in a picture of a line (or lines) of characters: the steps of :func:`find_glyph`
    (light flattened per channel, polarity, hysteresis threshold, rulings, a form's box and shadow cores
    removed, specks dropped), but every glyph-sized component kept, none chosen."""
    shape = np.asarray(image).shape
    scale = min(1.0, LINE_WORK_SIDE / max(shape[:2]))
    pg = _page(image, ink_dark, LINE_WORK_SIDE)
    u8, sure_t, ink_dark = pg.u8, pg.sure_t, pg.ink_dark
    h, w = u8.shape
    nothing = LineInk(
        np.zeros((h, w), np.float32),
        np.zeros((h, w), np.int32),
        np.zeros((0, 4), np.int64),
        np.zeros(0),
        True,
        ink_dark,
        scale,
    )
    if pg.mass is None or pg.labels is None or len(pg.mass) <= 1:
        return nothing
    mass, labels, n = pg.mass, pg.labels, len(pg.mass)
    x, y, bw, bh = (pg.stats[:, k] for k in range(4))
    top_mass = float(mass.max())
    if top_mass <= 0:
        return nothing
    tall = float(np.median(bh[mass >= 0.3 * top_mass]))
    keep = mass >= LINE_SPECK_SHARE * top_mass
    # what is left of a ruling: a bar much longer than a glyph is tall and thin
    keep &= ~((bw > 1.5 * tall) & (bh * 6 < bw))
    keep &= ~((bh > 1.8 * tall) & (bw * 6 < bh))
    keep[0] = False
    ids = np.flatnonzero(keep)
    if not ids.size:
        return nothing
    relabel = np.zeros(n, np.int32)
    relabel[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    kept = relabel[labels].astype(np.uint16)
    grown = cv2.dilate(kept, np.ones((3, 3), np.uint8))  # the strokes' soft edges, given to their component
    kept = np.where(kept > 0, kept, grown).astype(np.int32)
    out = _kept_ink(u8, kept > 0, sure_t)
    boxes = np.stack([y[ids], x[ids], y[ids] + bh[ids], x[ids] + bw[ids]], axis=1).astype(np.int64)
    return LineInk(out, kept, boxes, mass[ids].astype(np.float64), False, ink_dark, scale)
