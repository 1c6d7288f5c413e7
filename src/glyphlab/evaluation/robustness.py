"""Rotation robustness of a run's saved models: accuracy on the test images turned by fixed angles.

``glyphlab robustness RUN --angles 0:360:15`` loads every ``RUN/models/*/model``, rotates the run's saved test
images (``RUN/test_images.npz``, or another dataset's test split with ``--dataset``) by each angle with
:func:`glyphlab.data.variants.rotate_images` (bilinear, counter-clockwise, zero fill: the rotation the
rotated-MNIST datasets use), and writes ``RUN/robustness.csv`` (angle, model, accuracy) and
``RUN/robustness.png`` (one line per model).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from glyphlab.errors import ConfigError, DataError, RunFolderError
from glyphlab.fileio import atomic_open
from glyphlab.runfolder import ROBUSTNESS_CSV, ROBUSTNESS_PNG, RunFolder


def parse_angles(spec: str) -> list[float]:
    """``"0:360:15"`` (start:stop:step, stop excluded) or ``"0,90,180"`` -> angles in degrees."""
    text = (spec or "").strip()
    if not text:
        raise ConfigError("--angles is empty: use START:STOP:STEP (e.g. 0:360:15) or a list like 0,90,180")
    usage = f"--angles {spec!r}: use START:STOP:STEP (e.g. 0:360:15) or a list like 0,90,180"
    try:
        parts = [float(p) for p in text.split(":" if ":" in text else ",") if p.strip()]
    except ValueError:
        raise ConfigError(usage) from None
    if ":" not in text:
        return parts
    if len(parts) not in (2, 3):
        raise ConfigError(usage)
    start, stop = parts[0], parts[1]
    step = parts[2] if len(parts) == 3 else 15.0
    if step <= 0 or stop <= start:
        raise ConfigError(f"--angles {spec}: need STOP > START and a positive STEP")
    n = int(math.ceil((stop - start) / step - 1e-9))
    return [round(start + i * step, 6) for i in range(n)]


@dataclass
class RobustnessResult:
    angles: list[float]
    models: list[str]
    accuracy: np.ndarray  #: (n_models, n_angles)
    n_images: int
    csv_path: Path
    png_path: Path

    def spread(self, model: str) -> float:
        """Max minus min accuracy across the angles."""
        row = self.accuracy[self.models.index(model)]
        return float(row.max() - row.min())


def load_test_images(
    run_dir: Path, dataset: str | None = None, data_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if dataset:
        from glyphlab.data.spec import DataSpec

        ds = DataSpec(dataset, str(data_dir) if data_dir else None).load()
        if "test" not in ds.splits or ds["test"].labels is None:
            raise DataError(f"dataset '{dataset}' has no labeled test split")
        return ds["test"].images, ds["test"].labels
    try:
        return RunFolder(run_dir).read_test_images()
    except RunFolderError as exc:
        raise ConfigError(f"{exc}; or pass --dataset") from None


def robustness(
    run_dir: str | Path,
    angles: Sequence[float],
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    models: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> RobustnessResult:
    """Accuracy of each saved model of ``run_dir`` on its test images rotated by every angle in ``angles``.

    ``models`` keeps only those labels; ``limit`` scores a fixed random sample of that many test images.
    """
    from glyphlab.data.variants import rotate_images
    from glyphlab.models.persistence import load_model
    from glyphlab.runfolder import saved_models

    run_dir = Path(run_dir)
    angles = [float(a) for a in angles]
    if not angles:
        raise ConfigError("no angles to evaluate")
    found = sorted(saved_models(run_dir).items())
    if models:
        wanted = set(models)
        found = [(n, p) for n, p in found if n in wanted]
        if not found:
            raise ConfigError(f"none of {', '.join(models)} is a saved model of {run_dir}")
    images, labels = load_test_images(run_dir, dataset, data_dir)
    if limit and limit < len(images):
        pick = np.sort(np.random.default_rng(seed).choice(len(images), int(limit), replace=False))
        images, labels = images[pick], labels[pick]
    loaded = [(name, load_model(path)) for name, path in found]
    for name, model in loaded:
        classes = model.classes_ or []
        if labels.size and int(labels.max()) >= len(classes):
            raise DataError(f"model '{name}' knows {len(classes)} classes but the test labels go up to {labels.max()}")
    acc = np.zeros((len(loaded), len(angles)))
    for j, angle in enumerate(angles):
        turned = images if angle % 360 == 0 else rotate_images(images, np.full(len(images), angle))
        for i, (_, model) in enumerate(loaded):
            acc[i, j] = float((np.asarray(model.predict(turned)) == labels).mean())
    names = [n for n, _ in loaded]
    csv_path = run_dir / ROBUSTNESS_CSV
    with atomic_open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["angle", "model", "accuracy"])
        for j, angle in enumerate(angles):
            for i, name in enumerate(names):
                w.writerow([f"{angle:g}", name, f"{acc[i, j]:.6f}"])
    png_path = plot_robustness(angles, names, acc, run_dir / ROBUSTNESS_PNG, n_images=len(images))
    result = RobustnessResult(angles, names, acc, len(images), csv_path, png_path)
    return result


def plot_robustness(
    angles: Sequence[float], names: Sequence[str], acc: np.ndarray, path: Path, n_images: int | None = None
) -> Path:
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    markers = "osD^vP*X"
    for i, name in enumerate(names):
        ax.plot(
            angles,
            acc[i],
            marker=markers[i % len(markers)],
            ms=5,
            lw=2,
            label=f"{name} (mean {acc[i].mean():.3f}, spread {acc[i].max() - acc[i].min():.3f})",
        )
    ax.set_xlabel("rotation of the test images (degrees, counter-clockwise)")
    ax.set_ylabel("accuracy")
    title = "Accuracy under rotation"
    if n_images:
        title += f" ({n_images:,} test images per angle)"
    ax.set_title(title)
    lo = float(np.nanmin(acc)) if acc.size else 0.0
    ax.set_ylim(max(0.0, lo - 0.05), 1.005)
    if len(angles) > 1:
        span = max(angles) - min(angles)
        step = 45 if span > 180 else (15 if span > 45 else None)
        if step:
            ax.set_xticks(np.arange(math.floor(min(angles) / step) * step, max(angles) + step / 2, step))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(2, max(1, len(names))), frameon=False)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    return path
