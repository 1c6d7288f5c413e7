"""int8 ONNX: ONNX Runtime's static quantization, calibrated on the run's own training images, checked.

Measured on cnn-small (MNIST, AMD EPYC Zen 3 with AVX2 and no VNNI, quiet; docs/serving.md): static
quantization gives a fully int8 graph after ONNX Runtime's fusions (QLinearConv, QGemm, QLinearSoftmax) at
the same accuracy (0.9922 vs 0.9921), but at 0.77-0.97x the fp32 images/s. ONNX Runtime's profile says
why: the int8 convolution (one input channel, 5x5) is 2.2x *slower* than fp32 there, while the int8 Gemm
and max-pool are about 2x faster; without VNNI the u8s8 kernels take two instructions where VNNI takes
one. Of eight variants (QOperator, per-tensor, no reduce_range, s8s8, u8u8, only Gemm or only Conv
quantized, the convolution left in fp32) none was faster than this one by more than the run-to-run noise,
several were much slower (only Gemm: 0.49x); int8 activations, and 8-bit weights without reduce_range,
lost 0.06 points.
Dynamic quantization turns the convolution into ConvInteger and was several times slower. So the export is static
QDQ, uint8 activations, per-channel int8 weights, ``reduce_range`` (7-bit weights: the u8s8 kernels of CPUs
without VNNI can saturate at 8 bits); the speed-up is for CPUs with VNNI
(``lscpu | grep -o 'avx512_vnni\\|avx_vnni'``).

Calibration images are the training split of the run the model belongs to (MODEL is RUN/models/NAME/model;
the run's config.json says how its data was made), or a dataset the caller names. The quantized graph is
kept only if its top-1 class agrees with the fp32 graph's on at least :data:`MIN_AGREEMENT` of the run's
validation images (or the calibration images' complement); the sidecar records the agreement, the
calibration and that the file is int8. The sidecar's other fields are the fp32 export's, so a
:class:`~glyphlab.serving.predictor.Predictor` checks an int8 file exactly as an fp32 one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from glyphlab.errors import ConfigError
from glyphlab.serving.onnx_export import INPUT, OUTPUT, OnnxExportError, export_onnx, sidecar_path

#: training images the activation ranges are calibrated on
CALIBRATION_IMAGES = 512
#: images the int8 graph is compared with the fp32 graph on
CHECK_IMAGES = 2000
#: least share of those on which int8 and fp32 must pick the same class
MIN_AGREEMENT = 0.99


def calibration_split(ds, seed: int) -> tuple[np.ndarray, np.ndarray]:
    train = np.asarray(ds.splits["train"].images, dtype=np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    calib = train[order[:CALIBRATION_IMAGES]]
    if "val" in ds.splits:
        check = np.asarray(ds.splits["val"].images, dtype=np.float32)
    else:
        check = train[order[CALIBRATION_IMAGES:]]
    return calib, check[:CHECK_IMAGES]


class _Batches:
    """ONNX Runtime's CalibrationDataReader protocol over an array (get_next: a feed or None)."""

    def __init__(self, images: np.ndarray, flat: bool, batch: int = 64) -> None:
        self._it: Iterator[dict] = iter(
            {INPUT: (images[i : i + batch].reshape(len(images[i : i + batch]), -1) if flat else images[i : i + batch])}
            for i in range(0, len(images), batch)
        )

    def get_next(self) -> dict | None:
        return next(self._it, None)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _classes(sess, images: np.ndarray) -> np.ndarray:
    flat = len(sess.get_inputs()[0].shape) == 2
    out = [
        sess.run([OUTPUT], {INPUT: (b.reshape(len(b), -1) if flat else b)})[0]
        for b in (images[i : i + 500] for i in range(0, len(images), 500))
    ]
    return np.concatenate(out).argmax(axis=1)


def quantize_file(fp32: Path, out: Path, calibration: np.ndarray, check: np.ndarray) -> float:
    """Write the static-int8 graph of ``fp32`` to ``out``; return the top-1 agreement with fp32 on ``check``."""
    # onnxruntime.quantization is part of onnxruntime (the serve extra); imported here, where it is needed
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0 or len(check) == 0:
        raise ConfigError("int8 calibration needs images: the calibration data set is empty")
    flat = len(_session(fp32).get_inputs()[0].shape) == 2
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(out),
                _Batches(calibration, flat),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:
            raise OnnxExportError(f"ONNX Runtime could not quantize this graph: {str(exc).splitlines()[0]}") from None
    agree = float((_classes(_session(out), check) == _classes(_session(fp32), check)).mean())
    return agree


def export_int8(
    model_dir: str | Path,
    calibration: tuple[np.ndarray, np.ndarray, str],
    out_path: str | Path | None = None,
) -> Path:
    """Export MODEL to fp32 ONNX (checked against the model), quantize it to int8, check it, keep it at ``out_path``.

    ``calibration`` is (calibration images, check images, description): ``pipeline/export.py`` finds them in the
    model's run or a named dataset (this layer does not load datasets the way a run does).
    """
    from glyphlab.fileio import sha256_file
    from glyphlab.models.persistence import resolve_model_dir

    directory = resolve_model_dir(model_dir)
    out = Path(out_path) if out_path is not None else directory / "model.onnx"
    calib, check, what = calibration
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.fp32.", suffix=".onnx", dir=out.parent)
    os.close(fd)
    fp32 = Path(name)
    q = fp32.with_name(fp32.name.replace(".fp32.", ".int8."))
    try:
        export_onnx(directory, fp32)
        agree = quantize_file(fp32, q, calib, check)
        if agree < MIN_AGREEMENT:
            raise OnnxExportError(
                f"the int8 graph picks the fp32 graph's class on only {agree:.2%} of {len(check)} "
                f"images (< {MIN_AGREEMENT:.0%}); not keeping it: export without --quantize"
            )
        meta = json.loads(sidecar_path(fp32).read_text())
        os.replace(q, out)
    finally:
        for p in (fp32, sidecar_path(fp32), q):
            p.unlink(missing_ok=True)
    meta.update(
        {
            "sha256": sha256_file(out),
            "precision": "int8",
            "quantization": {
                "method": "onnxruntime static QDQ, uint8 activations, per-channel int8 weights, "
                "reduce_range, MinMax calibration",
                "calibration": what,
                "agreement_with_fp32": agree,
                "checked_on": int(len(check)),
            },
        }
    )
    meta.pop("max_abs_diff", None)  # that was the fp32 graph's; the int8 graph's check is the agreement
    meta.pop("tolerance", None)
    sidecar_path(out).write_text(json.dumps(meta, indent=2))
    return out
