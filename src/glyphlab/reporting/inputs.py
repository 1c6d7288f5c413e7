"""What the model saw: pictures as a person brought them beside the inputs the image path made of them.

A photo of a digit becomes a 28x28 input through several steps (light flattened, rulings removed, the glyph
chosen, cropped, centred); when a prediction is wrong, the first question is whether the model was shown the
digit at all. :func:`inputs_sheet` draws originals beside inputs (fastai's ``show_batch``);
:func:`write_inputs` writes each input as a PNG and the sheet (``glyphlab predict --show-inputs DIR``); the
report of a run trained on image files shows the sheet for a few of its files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageOps

from glyphlab.reporting.figures import png_bytes

#: at most this many pairs on one sheet
SHEET_MAX = 48


def original_thumbnail(path: str | Path, side: int = 160) -> np.ndarray:
    """A file as a person sees it, at most ``side`` px (for the sheet only): RGB with the EXIF orientation
    applied, or for other kinds (transparency, 16 bits, float) the grey levels the image path reads."""
    from glyphlab.data.images import to_pixels

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im) or im
        if im.mode in ("RGB", "L", "CMYK", "YCbCr") or (im.mode == "P" and "transparency" not in im.info):
            im = im.convert("RGB")
            im.thumbnail((side, side))
            return np.asarray(im)
        im.thumbnail((side, side))
        return np.clip(to_pixels(im, colour=False), 0.0, 1.0)


def inputs_sheet(
    originals: Sequence[np.ndarray],
    inputs: Sequence[np.ndarray | None],
    captions: Sequence[str],
    refusals: Sequence[str | None] | None = None,
) -> bytes:
    """PNG: each original (any size, RGB or grey) beside its model input (white ink on black, as the model
    takes it), captioned; an input of None is a refused file, its tile says why (``refusals``); up to
    :data:`SHEET_MAX` pairs, four pairs a row."""
    n = min(len(originals), len(inputs), SHEET_MAX)
    cols = min(4, max(1, n))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(2.3 * cols, 1.25 * rows + 0.2), layout="constrained")
    grid = fig.add_gridspec(rows, cols * 2)
    for i in range(n):
        r, c = divmod(i, cols)
        refused = inputs[i] is None
        shown = np.zeros((28, 28)) if refused else inputs[i]
        why = (refusals[i] if refusals is not None else None) or "refused"
        for j, (img, title) in enumerate(((originals[i], captions[i]), (shown, why if refused else "model input"))):
            ax = fig.add_subplot(grid[r, 2 * c + j])
            ax.imshow(
                img,
                cmap="gray" if np.ndim(img) == 2 else None,
                vmin=0,
                vmax=1 if np.ndim(img) == 2 else None,
                interpolation="nearest" if j else "antialiased",
            )
            ax.set_title(title, fontsize=7, color="#b45309" if refused and j else "black")
            ax.set_xticks([])
            ax.set_yticks([])
    return png_bytes(fig)


def write_inputs(
    folder: str | Path,
    files: Sequence[str | Path],
    inputs: Sequence[np.ndarray | None],
    captions: Sequence[str],
    refusals: Sequence[str | None] | None = None,
) -> list[Path | None]:
    """Write ``folder/<stem>.input.png`` per file (the input at its own size, white ink on black) and
    ``folder/inputs.png`` (originals beside inputs, captioned; a refused file, input None, beside why);
    the per-file paths, in order (None for a refused file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path | None] = []
    seen: set[str] = set()
    for f, x in zip(files, inputs):
        if x is None:
            paths.append(None)
            continue
        stem = Path(f).stem
        name, k = f"{stem}.input.png", 1
        while name in seen:  # two folders' 0001.jpg
            k += 1
            name = f"{stem}-{k}.input.png"
        seen.add(name)
        path = folder / name
        Image.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8), "L").save(path)
        paths.append(path)
    originals = [original_thumbnail(f) for f in files[:SHEET_MAX]]
    labelled = [f"{Path(f).name}: {c}" for f, c in zip(files, captions)]
    (folder / "inputs.png").write_bytes(
        inputs_sheet(
            originals, list(inputs[:SHEET_MAX]), labelled, list(refusals[:SHEET_MAX]) if refusals is not None else None
        )
    )
    return paths
