"""What the ``clean`` step costs a server on small clean uploads, beside the version-1 path (one table).

    python bench/clean_cost.py MODEL [--data-dir ../shared/data] [--n 200] [--rounds 5]

Two kinds of upload of MNIST test digits, 112 px PNGs: ``bench/serve_load.py``'s (dark on white, bilinear)
and ``bench/photos.py``'s (white on black, nearest). For each, one served upload's worker path without HTTP
(decode and prepare, the model, the answer as JSON; ``bench/photos.py``'s ``served_upload_ms``) and the
prepare step alone, with the MODEL's image config as version 1 (no ``clean``) and as today's default; process
time per upload, best of ``--rounds`` alternations of the two paths (each two passes), one thread; both paths in
the same process, alternated, so the ratio holds under load.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import numpy as np
from photos import cost_ms, cpu_name, served_upload_ms
from PIL import Image
from serve_load import png

from glyphlab.data.images import ImageConfig
from glyphlab.data.mnist import load_mnist


def uploads(images: np.ndarray) -> dict[str, list[bytes]]:
    nearest = []
    for img in images:
        buf = io.BytesIO()
        big = Image.fromarray(np.round(img * 255).astype(np.uint8)).resize((112, 112), Image.Resampling.NEAREST)
        big.save(buf, "PNG")
        nearest.append(buf.getvalue())
    return {"serve_load.py's PNG": [png(img) for img in images], "photos.py's PNG": nearest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("GLYPHLAB_DATA", "/work/shared/data")))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    images = load_mnist(args.data_dir / "mnist", download=False, progress=False)["test"].images[: args.n]
    v1, clean = ImageConfig.mnist_style(28, clean=False), ImageConfig.mnist_style(28)
    load0 = os.getloadavg()[0]
    print(f"{'upload (112 px)':22s} {'step':>14s} {'v1 ms':>8s} {'clean ms':>9s} {'v1/clean':>9s}")
    for name, blobs in uploads(images).items():
        for step, cost in (("served upload", lambda c, b=blobs: served_upload_ms(args.model, b, c, 2)),
                           ("prepare", lambda c, b=blobs: cost_ms(b, c, 2))):  # fmt: skip
            old = new = float("inf")
            for _ in range(args.rounds):  # the paths alternated, so a slow spell of the machine falls on both
                old, new = min(old, cost(v1)), min(new, cost(clean))
            print(f"{name:22s} {step:>14s} {old:8.3f} {new:9.3f} {old / new:8.2f}x")
    print(f"CPU: {cpu_name()}; load average before/after: {load0:.2f}/{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
