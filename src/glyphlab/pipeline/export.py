"""The ``export`` step: a saved model to ONNX (fp32, or int8 calibrated on its run's training images).

One use case for ``glyphlab export`` and ``gl.export``: it finds the calibration images (the run the model
belongs to, whose ``config.json`` says how its data was made, or a dataset the caller names), calls the
exporters of :mod:`glyphlab.serving`, and returns what was written with the checks it passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glyphlab.errors import ConfigError
from glyphlab.runfolder import CONFIG, MODELS


@dataclass(frozen=True)
class ExportSettings:
    """What to export: ``quantize="int8"`` for int8 (``calibration`` names a dataset to calibrate on when the
    model is not inside a run folder); ``onnx`` is the output file (default MODEL/model.onnx)."""

    model: Path
    onnx: Path | None = None
    quantize: str | None = None
    calibration: str | None = None
    data_dir: str | None = None


@dataclass(frozen=True)
class Export:
    """The written ONNX file and its checks: the largest difference from the model on a probe batch (fp32), or
    the share of images on which int8 picks fp32's class, how many were checked and what it was calibrated on."""

    path: Path
    sidecar: Path
    precision: str
    max_abs_diff: float | None = None
    agreement_with_fp32: float | None = None
    checked_on: int | None = None
    calibration: str | None = None


def run_images(model_dir: str | Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration images, check images, description) from the run a saved model folder belongs to."""
    from glyphlab.models.persistence import resolve_model_dir
    from glyphlab.pipeline.run import RunConfig, load_run_dataset
    from glyphlab.serving.quantize import CALIBRATION_IMAGES, calibration_split

    directory = resolve_model_dir(model_dir)
    config = next((p / CONFIG for p in directory.parents if (p / CONFIG).is_file() and (p / MODELS).is_dir()), None)
    if config is None:
        raise ConfigError(
            f"{directory} is not inside a run folder (RUN/models/NAME/model), so there are no training "
            "images to calibrate int8 on: pass a dataset with --calibration"
        )
    ds = load_run_dataset(RunConfig.from_file(config))
    return (
        *calibration_split(ds, seed),
        f"{CALIBRATION_IMAGES} training images of the run {config.parent} ({ds.name})",
    )


def dataset_images(name: str, data_dir: str | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration images, check images, description) from a named dataset or a path."""
    from glyphlab.data.spec import DataSpec
    from glyphlab.serving.quantize import CALIBRATION_IMAGES, calibration_split

    ds = DataSpec(name, data_dir).load()
    return (*calibration_split(ds, seed), f"{CALIBRATION_IMAGES} training images of {ds.name}")


def export(settings: ExportSettings) -> Export:
    """Write the ONNX file (checked against the model to 1e-4; int8 kept only if it agrees with fp32)."""
    from glyphlab.serving.onnx_export import export_onnx, sidecar_path

    if settings.quantize not in (None, "int8"):
        raise ConfigError(f"--quantize takes int8, got {settings.quantize!r}")
    if settings.quantize:
        from glyphlab.serving.quantize import export_int8

        if settings.calibration:
            calib = dataset_images(settings.calibration, settings.data_dir)
        else:
            calib = run_images(settings.model)
        out = export_int8(settings.model, calib, settings.onnx)
    else:
        out = export_onnx(settings.model, settings.onnx)
    meta = json.loads(sidecar_path(out).read_text())
    q = meta.get("quantization") or {}
    return Export(
        path=out,
        sidecar=sidecar_path(out),
        precision="int8" if settings.quantize else "fp32",
        max_abs_diff=meta.get("max_abs_diff"),
        agreement_with_fp32=q.get("agreement_with_fp32"),
        checked_on=q.get("checked_on"),
        calibration=q.get("calibration"),
    )
