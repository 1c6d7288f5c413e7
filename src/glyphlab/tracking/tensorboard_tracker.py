"""TensorBoard event files through ``torch.utils.tensorboard`` (needs the ``tensorboard`` package, the
``glyphlab[tensorboard]`` extra): ``tensorboard --logdir RUN/tensorboard`` shows every model of the run."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from glyphlab.runfolder import ModelFolder, RunFolder
from glyphlab.tracking import final_metrics, write_tracking

LOG_DIR = "tensorboard"
SAMPLES = 32  # sample predictions shown as one image


def _png_array(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def sample_predictions(model_dir: Path, run_dir: Path) -> np.ndarray | None:
    """The first test images with predicted and true labels (red when wrong), as an HxWx3 array."""
    try:
        images = RunFolder(run_dir).read_test_images_raw()[0][:SAMPLES]
        pred = ModelFolder(model_dir).read_predictions()  # a RunFolderError is an OSError: caught below
        y_true, y_pred = pred["y_true"][:SAMPLES], pred["y_pred"][:SAMPLES]
    except (OSError, KeyError, ValueError):
        return None
    cols = 8
    rows = int(np.ceil(len(images) / cols))
    fig = Figure(figsize=(cols * 1.1, rows * 1.25))
    for i, (img, t, p) in enumerate(zip(images, y_true, y_pred)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(img, cmap="gray_r")
        ax.set_title(f"{p} (true {t})", fontsize=7, color="black" if p == t else "red")
        ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, facecolor="white", bbox_inches="tight")
    return _png_array(buf.getvalue())


def _hparam(v: Any) -> Any:
    """The hparams plugin takes numbers, strings and booleans only."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


class TensorBoardTracker:
    backend = "tensorboard"

    def __init__(self, out: Path, name: str, params: dict[str, Any], log_dir: str | None = None) -> None:
        self.out = Path(out)
        self.uri = str((Path(log_dir) if log_dir else self.out / LOG_DIR).resolve())
        self.name = name
        with SummaryWriter(self.uri) as w:
            w.add_text("run/config", "\n".join(f"    {k} = {v}" for k, v in params.items()), 0)
        write_tracking(self.out, {"backend": self.backend, "uri": self.uri, "see": f"tensorboard --logdir {self.uri}"})

    def model_finished(self, label: str, model_dir: Path, metrics: dict[str, Any]) -> None:
        try:
            self._write_model(label, Path(model_dir), metrics)
        except Exception as exc:  # tracking is a copy of the run folder: never the reason a run fails
            warnings.warn(
                f"TensorBoard logging of {label} failed ({exc}); the run folder still has everything", stacklevel=2
            )

    def _write_model(self, label: str, model_dir: Path, metrics: dict[str, Any]) -> None:
        with SummaryWriter(str(Path(self.uri) / label)) as w:
            for i, row in enumerate(ModelFolder(model_dir).read_history()):
                step = int(row.get("epoch", i + 1))
                for k, v in row.items():
                    if k != "epoch":
                        w.add_scalar(f"epoch/{k}", v, step)
            finals = final_metrics(metrics)
            for k, v in finals.items():
                w.add_scalar(f"test/{k}", v, 0)
            if (model_dir / "confusion.png").is_file():
                w.add_image(
                    "confusion_matrix", _png_array((model_dir / "confusion.png").read_bytes()), 0, dataformats="HWC"
                )
            samples = sample_predictions(model_dir, self.out)
            if samples is not None:
                w.add_image("sample_predictions", samples, 0, dataformats="HWC")
            hparams = {
                "model": str(metrics.get("registry_model", label)),
                **{k: _hparam(v) for k, v in (metrics.get("params") or {}).items()},
            }
            w.add_hparams(
                hparams, {f"hparam/{k}": finals[k] for k in ("accuracy", "f1_macro") if k in finals}, run_name="hparams"
            )

    def trial_finished(self, number: int, params: dict[str, Any], value: float | None, state: str) -> None:
        with SummaryWriter(str(Path(self.uri) / "trials")) as w:
            if value is not None:
                w.add_scalar("trial/cv_score", float(value), number)
            w.add_hparams(
                {k: _hparam(v) for k, v in params.items()},
                {"hparam/cv_score": float(value) if value is not None else float("nan")},
                run_name=f"trial-{number}",
            )

    def run_finished(self, out: Path, failed: bool = False) -> None:
        """Event files are flushed as each writer closes: nothing is left to do."""
