"""What the ``clean`` step hands on, hashed per picture: to show a speed change left every input as it was.

    python bench/clean_hashes.py FOLDER... [--data-dir ../shared/data] --out after.json [--compare before.json]

For each picture (every PNG/JPEG under the FOLDERs, ``bench/clean_cost.py``'s two kinds of upload of ``--n``
MNIST test digits, and ``--n`` of them drawn as the serving page's canvas draws: dark strokes on white,
opaque RGB or RGBA): a hash of the prepared input in both centrings (``whole_pixels`` on and off) and made
binary, of :func:`glyphlab.data.cleanup.find_glyph`'s fields, and for every fifth picture of
:func:`~glyphlab.data.cleanup.find_line`'s (what ``glyphlab read`` reads). Run it on the code before and after
a change; ``--compare`` prints how many pictures differ, in which field, and one example each.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from glyphlab.data import cleanup
from glyphlab.data.images import DecodeLimits, ImageConfig, decode_image, prepare_image, read_image_file, to_pixels
from glyphlab.data.mnist import load_mnist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clean_cost import uploads  # noqa: E402

CONFIGS = {
    "whole pixels": ImageConfig.mnist_style(28, whole_pixels=True),
    "sub-pixel": ImageConfig.mnist_style(28),
    "binary": ImageConfig.mnist_style(28, binary=True, stroke=None),
}


def digest(*parts: object) -> str:
    """A short hash of arrays (shape, dtype and bytes) and other values (their repr)."""
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(repr((part.shape, part.dtype.str)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:16]


def hashes(im: Image.Image, line: bool) -> dict[str, str]:
    """One picture's hashes: each config's prepared input (or its refusal), the glyph found, the line's ink."""
    out = {}
    for name, config in CONFIGS.items():
        p = prepare_image(im, config)
        out[name] = digest(p.pixels, p.inverted, p.no_ink, p.others)
    pixels = to_pixels(im, colour=True, eight_bit=True)
    g = cleanup.find_glyph(pixels)
    out["glyph"] = digest(g.crop, g.no_ink, g.others, g.box, g.ink_dark, g.origin, g.shape)
    if line:
        ln = cleanup.find_line(pixels)
        out["line"] = digest(ln.ink, ln.labels, ln.boxes, ln.mass, ln.no_ink, ln.ink_dark, ln.scale)
    return out


def canvas(image: np.ndarray, rgba: bool) -> bytes:
    """An MNIST digit drawn as the serving page draws: round dark strokes on a white 280 px canvas."""
    im = Image.new("RGBA" if rgba else "RGB", (280, 280), (255, 255, 255, 255))
    draw = ImageDraw.Draw(im)
    for y, x in zip(*np.nonzero(image > 0.5)):
        draw.ellipse([x * 10 - 5, y * 10 - 5, x * 10 + 15, y * 10 + 15], fill=(17, 17, 17, 255))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def pictures(folders: list[Path], data_dir: Path, n: int):
    """(name, decoded picture) of every picture hashed."""
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
            yield str(path), read_image_file(path, DecodeLimits())
    digits = load_mnist(data_dir / "mnist", download=False, progress=False)["test"].images[: 2 * n]
    for kind, blobs in uploads(digits[:n]).items():
        for k, blob in enumerate(blobs):
            yield f"{kind} {k}", decode_image(blob)
    for k, image in enumerate(digits[n:]):
        yield f"canvas {k}", decode_image(canvas(image, rgba=k % 2 == 0))


def compare(before: dict, after: dict) -> None:
    differ, example = collections.Counter(), {}
    for name, fields in before.items():
        for field, value in fields.items():
            if after.get(name, {}).get(field) != value:
                differ[field] += 1
                example.setdefault(field, name)
    missing = len(set(before) ^ set(after))
    print(f"{len(before)} pictures before, {len(after)} after ({missing} not in both); differing: "
          + (", ".join(f"{f} {c} (e.g. {example[f]})" for f, c in differ.items()) or "none"))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", type=Path, nargs="*")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("GLYPHLAB_DATA", "/work/shared/data")))
    ap.add_argument("--n", type=int, default=200, help="MNIST test digits per kind of upload and of drawing")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare", type=Path, help="an earlier --out to compare with")
    args = ap.parse_args()
    found = {
        name: hashes(im, line=k % 5 == 0) for k, (name, im) in enumerate(pictures(args.folders, args.data_dir, args.n))
    }
    args.out.write_text(json.dumps(found, indent=0, sort_keys=True))
    print(f"{len(found)} pictures hashed -> {args.out}")
    if args.compare:
        compare(json.loads(args.compare.read_text()), found)


if __name__ == "__main__":
    main()
