"""Write MNIST digits as a person's own scans would come: 64x64 PNG files, dark ink on white paper, the digit
off-centre and at different sizes, one sub-folder per class. Used for the README's "Your own images" section.

    python docs/make_scans.py MNIST_DIR OUT [--per-class 200]

writes OUT/my-digits/ (from MNIST train) and OUT/new-scans/ (from MNIST test).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from glyphlab.data.mnist import load_mnist


def write_scans(images: np.ndarray, labels: np.ndarray, out: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for c in range(10):
        (out / str(c)).mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.flatnonzero(labels == c)[:per_class]):
            side = int(rng.integers(30, 48))  # the digit's 28 px drawn 30-47 px large
            digit = Image.fromarray(np.round(images[idx] * 255).astype(np.uint8)).resize((side, side),
                                                                                           Image.Resampling.BILINEAR)
            page = np.zeros((64, 64), np.uint8)
            top, left = rng.integers(0, 64 - side + 1, size=2)
            page[top:top + side, left:left + side] = np.asarray(digit)
            Image.fromarray(255 - page).save(out / str(c) / f"{i:04d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mnist_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-class", type=int, default=200)
    args = ap.parse_args()
    ds = load_mnist(args.mnist_dir, download=False, progress=False)
    write_scans(ds["train"].images, ds["train"].labels, args.out / "my-digits", args.per_class, seed=0)
    write_scans(ds["test"].images, ds["test"].labels, args.out / "new-scans", args.per_class, seed=1)
    print(f"wrote {args.out / 'my-digits'} and {args.out / 'new-scans'} ({10 * args.per_class} images each)")


if __name__ == "__main__":
    main()
