"""Font rendering for generated glyphs: the TrueType fonts a machine has and clean, centred renders of
0-9, A-Z, a-z in each of them (the templates ``glyphs36`` distorts)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from glyphlab.data.studies.cache import ALNUM_CLASSES
from glyphlab.errors import DataError

#: fonts whose ASCII slots hold symbols, or that have only a few glyphs, are never used
_FONT_EXCLUDE = re.compile(r"(Sym|NonUni|LastResort|cmex|cmsy|cmmi|Display|Math|ExtraLight)", re.IGNORECASE)


def font_files(which: str = "all") -> list[Path]:
    """TrueType fonts to render with: matplotlib's own (``bundled``), plus the system's (``all``).

    Deduplicated by file name (the DejaVu files often exist twice) and sorted, so one machine always gets the
    same list; symbol, math and display fonts are left out."""
    import matplotlib  # local: matplotlib is slow to import, and only generating glyphs needs its fonts
    from matplotlib import font_manager

    if which not in ("all", "bundled"):
        raise DataError(f"glyphs36: fonts must be 'all' or 'bundled', got {which!r}")
    paths = sorted(Path(matplotlib.get_data_path(), "fonts", "ttf").glob("*.ttf"))
    if which == "all":
        paths += sorted(Path(p) for p in font_manager.findSystemFonts(fontext="ttf"))
    seen: dict[str, Path] = {}
    for p in paths:
        if p.suffix.lower() == ".ttf" and not _FONT_EXCLUDE.search(p.name) and p.name.lower() not in seen:
            seen[p.name.lower()] = p
    return sorted(seen.values(), key=lambda p: p.name.lower())


def _fit_glyph(mask: np.ndarray, size: int, box: float) -> np.ndarray | None:
    """Crop the ink of ``mask`` and scale it (keeping aspect) into a ``box * size`` square, centred."""
    ys, xs = np.nonzero(mask > 0.2)
    if len(ys) < 4:
        return None
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    f = box * size / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    img = Image.fromarray((crop * 255).astype(np.uint8)).resize((nw, nh), Image.Resampling.LANCZOS)
    out = np.zeros((size, size), dtype=np.float32)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = np.asarray(img, dtype=np.float32) / 255.0
    return np.clip(out, 0, 1)


@lru_cache(maxsize=8)
def glyph_templates(size: int = 56, fonts: str = "all") -> tuple[np.ndarray, tuple[str, ...]]:
    """Clean renders (n_fonts, 62, size, size) of 0-9, A-Z, a-z, each glyph scaled into 70% of the square.

    A font is kept only when all 62 characters render to distinct, non-empty glyphs (so a font that maps
    ASCII to boxes or symbols is dropped)."""
    chars = ALNUM_CLASSES + [chr(ord("a") + i) for i in range(26)]
    big = 4 * size
    templates, names = [], []
    for path in font_files(fonts):
        try:
            font = ImageFont.truetype(str(path), int(big * 0.6))
        except OSError:
            continue
        glyphs = []
        for ch in chars:
            canvas = Image.new("L", (big, big), 0)
            ImageDraw.Draw(canvas).text((big // 6, big // 8), ch, fill=255, font=font)
            g = _fit_glyph(np.asarray(canvas, dtype=np.float32) / 255.0, size, 0.7)
            if g is None:
                break
            glyphs.append(g)
        if len(glyphs) != len(chars):
            continue
        stack = np.stack(glyphs)
        flat = (stack > 0.5).reshape(len(chars), -1)
        if len({row.tobytes() for row in flat[:36]}) < 30:  # boxes or one repeated symbol
            continue
        templates.append(stack)
        names.append(path.name)
    if not templates:
        raise DataError("glyphs36: no usable TrueType font found (matplotlib's DejaVu fonts should always be there)")
    return np.stack(templates).astype(np.float32), tuple(names)
