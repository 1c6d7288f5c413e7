"""Phone photos of handwritten digits, read through glyphlab's image path: the table of issue 26.

    python bench/photos.py --data-dir ../shared/data [--model RUN/models/cnn-small] [--n 1000] [--train 3000]

Makes photo-like JPEGs of MNIST digits with glyphlab.data.photos (seeded: paper, light, shadows, rulings,
ink colour, tilt, blur, JPEG; see that module), then prints, with the CPU and the load:

- an MNIST-trained cnn-small (``--model``, else trained here with ``glyphlab run --dataset mnist``) on
  ``--n`` photos of MNIST *test* digits through ``glyphlab predict MODEL FOLDER --json``, and the same
  photos through the version-1 image path (the config a model saved before the ``clean`` step records);
- the same model on clean 64x64 scans of the same digits (docs/make_scans.py's kind), both paths;
- the same model on photos made by bench/indep_photos.py (written independently of glyphlab.data.photos);
- a cnn-small trained on ``--train`` photos of MNIST *train* digits (``glyphlab run --dataset FOLDER``),
  from scratch and fine-tuned from the MNIST-trained model (``--param cnn-small.init_from=MODEL``), on the
  ``--n`` test photos, and on the run's own held-out split beside the MNIST-trained model on that same split
  (the split's photos are not the test photos: compare a run's leaderboard with the model it started from there);
- the image path's cost per 160 px photo (decoded; one thread, process time), both paths, and the ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from glyphlab.data.images import DecodeLimits, ImageConfig, decode_image, prepare_file, prepare_image
from glyphlab.data.mnist import load_mnist
from glyphlab.data.photos import photo_bytes, write_photo_folder

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def glyphlab(*args: str) -> str:
    """Run the glyphlab CLI as a user would; its stdout."""
    out = subprocess.run([sys.executable, "-m", "glyphlab.cli", *args], capture_output=True, text=True)
    if out.returncode not in (0, 1):  # 1: some files refused (listed in the JSON)
        sys.exit(f"glyphlab {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def predict_folder(model: Path, folder: Path) -> tuple[float, int, int]:
    """Accuracy of ``glyphlab predict MODEL FOLDER --json`` (refused files count as wrong), refused, files."""
    preds = json.loads(glyphlab("predict", str(model), str(folder), "--json"))["predictions"]
    right = sum(p.get("class_name") == Path(p["file"]).parent.name for p in preds)
    refused = sum("error" in p for p in preds)
    return right / len(preds), refused, len(preds)


def accuracy_with(model: Path, folder: Path, config: ImageConfig) -> float:
    """Accuracy of the model on a folder's files prepared with another config (the old path), in Python."""
    from glyphlab.serving.predictor import Predictor

    pred = Predictor(model)
    files = sorted(folder.glob("*/*.*"))
    x = np.stack([prepare_file(f, config, DecodeLimits()).pixels for f in files])
    labels = np.array([pred.classes.index(f.parent.name) for f in files])
    return float((pred.predict(x).argmax(1) == labels).mean())


def train_on_photos(run: Path, photos: Path, *params: str) -> Path:
    """``glyphlab run --dataset PHOTOS --models cnn-small`` into ``run`` (``params``: its ``--param`` values), unless
    it is there; the run folder."""
    if not (run / "models" / "cnn-small" / "done.json").exists():
        extra = [a for p in params for a in ("--param", p)]
        print(f"training cnn-small on {photos} ({' '.join(extra) or 'from scratch'}) ...", flush=True)
        glyphlab("run", "--dataset", str(photos), "--models", "cnn-small", "--out", str(run), "--no-report",
                 "--val-fraction", "0.1", *extra)  # fmt: skip
    return run


def run_split(photos: Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test split ``glyphlab run --dataset PHOTOS --val-fraction 0.1`` evaluates on (images as
    the run prepared them, class names), carved by the run's own code."""
    from glyphlab.pipeline.run import RunConfig, load_run_dataset

    ds = load_run_dataset(RunConfig(dataset=str(photos), models=["cnn-small"], val_fraction=0.1))
    return ds["test"].images, np.array(ds.classes)[ds["test"].labels]


def split_accuracy(model: Path, split: tuple[np.ndarray, np.ndarray]) -> float:
    """A model's accuracy on a run's held-out split (the photo runs' own, and the MNIST-trained model's there)."""
    from glyphlab.serving.predictor import Predictor

    pred = Predictor(model)
    images, labels = split
    return float((np.array(pred.classes)[pred.predict(images).argmax(1)] == labels).mean())


def write_scans(images: np.ndarray, labels: np.ndarray, out: Path, seed: int) -> None:
    """64x64 PNG scans, dark ink on white, the digit 30-47 px and off-centre (docs/make_scans.py's kind)."""
    rng = np.random.default_rng(seed)
    for i, (img, lab) in enumerate(zip(images, labels)):
        side = int(rng.integers(30, 48))
        digit = Image.fromarray(np.round(img * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
        page = np.zeros((64, 64), np.uint8)
        top, left = rng.integers(0, 64 - side + 1, size=2)
        page[top : top + side, left : left + side] = np.asarray(digit)
        (out / str(lab)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - page).save(out / str(lab) / f"{i:05d}.png")


def cost_ms(blobs: list[bytes], config: ImageConfig, rounds: int = 3) -> float:
    """The image path's process time per decoded picture, best of ``rounds``."""
    ims = [decode_image(b) for b in blobs]
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for im in ims:
            prepare_image(im, config)
        best = min(best, (time.process_time() - t) / len(ims))
    return best * 1e3


def served_upload_ms(model: Path, uploads: list[bytes], config: ImageConfig, rounds: int = 3) -> float:
    """One served upload's worker path without HTTP, as ``bench/serve_cold.py`` times it back to back: decode and
    prepare (``Predictor.prepare_bytes``), the model on it, the answer as JSON; process time per upload."""
    from glyphlab.serving.predictor import Predictor

    pred = Predictor(model)
    pred.image_config = config
    pred.warm_up(1)
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for data in uploads:
            x = pred.prepare_bytes(data)[None]
            json.dumps(pred.describe(pred.predict(x)[0]))
        best = min(best, (time.process_time() - t) / len(uploads))
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--model", type=Path, help="an MNIST-trained model folder (default: train cnn-small here)")
    ap.add_argument("--n", type=int, default=1000, help="test photos (and clean scans)")
    ap.add_argument("--train", type=int, default=3000, help="training photos for the photo-trained model")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-photos"), help="folder for photos and runs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=MODEL",
        help="another model to put on the photos (glyphlab's and indep_photos.py's), e.g. one trained "
        "with --param cnn-small.augment=true or fine-tuned on photos (init_from)",
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    mnist = load_mnist(args.data_dir / "mnist", download=False, progress=False)
    rng = np.random.default_rng(args.seed)
    test_idx = rng.choice(len(mnist["test"].images), args.n, replace=False)
    train_idx = rng.choice(len(mnist["train"].images), args.train, replace=False)
    X, y = mnist["test"].images[test_idx], mnist["test"].labels[test_idx]

    photos, scans, indep = work / "photos-test", work / "scans-test", work / "indep-photos"
    train_photos = work / "photos-train"
    if not photos.exists():
        write_photo_folder(X, y, photos, seed=args.seed)
    if not scans.exists():
        write_scans(X, y, scans, seed=args.seed)
    if not train_photos.exists():
        write_photo_folder(
            mnist["train"].images[train_idx], mnist["train"].labels[train_idx], train_photos, seed=args.seed + 1
        )
    if not indep.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "indep_photos.py"),
                "--data-dir",
                str(args.data_dir),
                "--out",
                str(indep),
                "--n",
                str(args.n),
                "--seed",
                str(args.seed + 2),
            ],
            check=True,
            capture_output=True,
        )

    model = args.model
    if model is None:
        model = work / "mnist-run" / "models" / "cnn-small"
        if not (model / "done.json").exists():
            print("training cnn-small on MNIST (glyphlab run --dataset mnist) ...", flush=True)
            glyphlab(
                "run",
                "--dataset",
                "mnist",
                "--data-dir",
                str(args.data_dir),
                "--models",
                "cnn-small",
                "--out",
                str(work / "mnist-run"),
                "--no-report",
            )
    photo_run = train_on_photos(work / "photo-run", train_photos)
    transfer_run = train_on_photos(work / "photo-run-transfer", train_photos, f"cnn-small.init_from={model}")

    v1 = ImageConfig.mnist_style(28, clean=False)  # what a version-1 record (no "clean") reads as
    rows = []
    acc, refused, n = predict_folder(model, photos)
    rows.append(("MNIST cnn-small, photos (glyphlab predict)", acc, refused, accuracy_with(model, photos, v1)))
    acc, refused, n = predict_folder(model, scans)
    rows.append(("MNIST cnn-small, clean 64 px scans", acc, refused, accuracy_with(model, scans, v1)))
    acc, refused, n = predict_folder(model, indep)
    rows.append(("MNIST cnn-small, photos by bench/indep_photos.py", acc, refused, accuracy_with(model, indep, v1)))
    split = run_split(train_photos)
    for run, how in ((photo_run, "from scratch"), (transfer_run, "fine-tuned from the MNIST model")):
        acc, refused, n = predict_folder(run / "models" / "cnn-small", photos)
        rows.append((f"cnn-small, {args.train} photos, {how}: {args.n} new photos", acc, refused, float("nan")))
        acc = split_accuracy(run / "models" / "cnn-small", split)
        rows.append((f"  the same, its run's test split ({len(split[1])} of the {args.train})", acc, 0, float("nan")))
    rows.append(("MNIST cnn-small, that test split", split_accuracy(model, split), 0, float("nan")))
    for item in args.also:
        label, _, path = item.partition("=")
        for folder, what in ((photos, "photos"), (indep, "indep_photos.py")):
            acc, refused, n = predict_folder(Path(path), folder)
            rows.append((f"{label}, {what}", acc, refused, float("nan")))

    gen = np.random.default_rng(99)
    blobs = []
    while len(blobs) < 200:  # 160 px photos for the cost figure
        b = photo_bytes(X[len(blobs) % len(X)], gen)
        if max(Image.open(io.BytesIO(b)).size) >= 150:
            blobs.append(b)
    new_cfg = ImageConfig.mnist_style(28)
    old_ms, new_ms = cost_ms(blobs, v1), cost_ms(blobs, new_cfg)
    uploads = []  # bench/serve_load.py's upload: a test digit as a 112 px PNG, white on black
    for img in X[:200]:
        buf = io.BytesIO()
        Image.fromarray(np.round(img * 255).astype(np.uint8)).resize((112, 112), Image.Resampling.NEAREST).save(
            buf, "PNG"
        )
        uploads.append(buf.getvalue())
    old_up, new_up = served_upload_ms(model, uploads, v1), served_upload_ms(model, uploads, new_cfg)

    print(f"\nCPU: {cpu_name()}; load average before/after: {os.getloadavg()[0]:.2f}")
    print(f"{'':74s} {'accuracy':>9s} {'refused':>8s} {'v1 path':>8s}")
    for name, a, r, old in rows:
        print(f"{name:74s} {a:9.4f} {r:8d} {old:8.4f}")
    print(
        f"\nimage path per 150-160 px photo (decoded, 1 thread, process time): v1 {old_ms:.3f} ms, "
        f"clean {new_ms:.3f} ms ({new_ms / old_ms:.1f}x)"
    )
    print(
        f"one served upload (serve_load's 112 px PNG: decode, prepare, model, JSON; 1 thread): v1 {old_up:.3f} ms, "
        f"clean {new_up:.3f} ms: single-image throughput {old_up / new_up:.2f}x of v1's"
    )


if __name__ == "__main__":
    main()
