"""Train a reading-oriented MNIST model: a saved cnn-small fine-tuned on the reader's own characters.

    python bench/train_read_model.py --data-dir ../shared/data --base RUN/models/cnn-small --out runs-read
        [--n 10000] [--seed 3000] [--epochs 4]

The reader hands its glyph model characters cut out of a photographed line (a neighbour's stroke tip at an edge,
a stroke faded by the photo's light, a digit broken by a lifted pen), which MNIST's own digits never show it:
an MNIST cnn-small reads MNIST's test digits at 0.993 but the same digits cut right out of
``bench/read.py``'s photos at 0.987. This makes ``--n`` seeded photos of strings of 3-8 MNIST *training*
digits with ``bench/read.py``'s generator (never the test digits the benchmark reads), reads them with
``--base``, keeps each character whose box is over its written digit (the cut right, whatever the label read)
with the model input the reader prepared for it and its true digit, and fine-tunes ``--base`` with
``glyphlab run`` (``init_from``) on those characters together with all 60,000 MNIST training digits (so the
single-glyph path keeps what it knew), tested on MNIST's 10,000 test digits as usual. Written to ``--out``:
``data/mnist-read.csv`` (the training split; its name is the run's dataset) and ``data/mnist-test.csv``
(785-column pixel CSVs), and the run folder ``run/`` whose ``models/cnn-small`` ``glyphlab read`` takes like
any saved model. Seeded: the same command makes the same data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from read import cut_right, make_strings  # noqa: E402  (bench/read.py's string photos and its right cut)


def reader_characters(
    predictor, images: np.ndarray, labels: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The model inputs (N, 28, 28) and true digits of the characters the reader cuts right in ``n`` seeded
    string photos of ``images`` (:func:`make_strings`'s), in order; and the photos they come from, those cut
    right throughout (the others give none: a merge or a split has no one true digit per box)."""
    from glyphlab.reading import read

    spans: list = []
    pairs = make_strings(images, labels, n, seed, spans=spans)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    used: list[int] = []
    for start in range(0, n, 200):
        chunk = pairs[start : start + 200]
        readings = read(predictor, [p for p, _ in chunk])
        for k, (reading, (_, text), cols) in enumerate(zip(readings, chunk, spans[start:])):
            chars = reading.chars
            if len(reading.lines) != 1 or len(chars) != len(text):
                continue
            if not all(cut_right(c.box, s) for c, s in zip(chars, cols)):
                continue
            used.append(start + k)
            xs.extend(reading.inputs)
            ys.extend(int(ch) for ch in text)
        print(f"  {min(n, start + 200)}/{n} photos read, {len(ys)} characters", flush=True)
    if not xs:
        raise SystemExit("the reader cut none of the photos right: is --base a model of MNIST's digits?")
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), used


def write_data(out: Path, x: np.ndarray, y: np.ndarray, train, test) -> tuple[Path, Path]:
    """``out/mnist-read.csv`` (the reader's characters, then MNIST's training digits) and ``out/mnist-test.csv``
    (MNIST's test digits), 785-column pixel CSVs (0..255, the label last), as ``glyphlab run`` reads them."""
    from glyphlab.data.dataset import Split
    from glyphlab.data.formats import write_csv785

    def floats(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        return images / 255.0 if images.max() > 1.5 else images

    both = Split(np.concatenate([x, floats(train.images)]), np.concatenate([y, train.labels]))
    return (
        write_csv785(out / "mnist-read.csv", both),
        write_csv785(out / "mnist-test.csv", Split(floats(test.images), test.labels)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--base", type=Path, required=True, help="the MNIST cnn-small to start from (a model folder)")
    ap.add_argument("--out", type=Path, default=Path("runs-read"))
    ap.add_argument("--n", type=int, default=10000, help="string photos of MNIST training digits to read")
    ap.add_argument("--seed", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-4)
    args = ap.parse_args()

    import torch

    import glyphlab as gl
    from glyphlab.data.mnist import load_mnist
    from glyphlab.serving.predictor import Predictor

    torch.set_num_threads(1)
    ds = load_mnist(args.data_dir / "mnist", download=False, progress=False)
    predictor = Predictor(args.base, backend="native", threads=1)
    t0 = time.perf_counter()
    train = ds.splits["train"]
    x, y, used = reader_characters(predictor, train.images, train.labels, args.n, args.seed)
    print(f"{len(y)} characters from the {len(used)} of {args.n} photos cut right, {time.perf_counter() - t0:.0f} s")
    train_csv, test_csv = write_data(args.out / "data", x, y, train, ds.splits["test"])
    params = {"init_from": str(args.base), "epochs": args.epochs, "lr": args.lr, "augment": True, "seed": 0}
    run = gl.run(
        str(train_csv),
        ["cnn-small"],
        args.out / "run",
        params={"cnn-small": params},
        dataset_options={"test_path": str(test_csv)},
    )
    print(f"model: {run.path / 'models' / 'cnn-small'}")


if __name__ == "__main__":
    main()
