"""Export a saved model to ONNX, checked against the model itself before the file is kept.

Torch networks are exported with their input normalisation (and the resize of tiny inputs) inside the
graph, and a softmax at the end, so the ONNX input is the raw image batch ``image`` (N, H, W) float32 in
[0, 1] and the output ``probabilities`` (N, n_classes). scikit-learn pipelines go through skl2onnx (input
``image`` (N, H*W)); logreg and random-forest are known to convert, other estimators are tried and
refused with a clear message when the converter lacks them or their outputs differ.

Beside ``OUT.onnx`` a sidecar ``OUT.onnx.json`` records the classes, the input shape, the SHA-256 of the
ONNX file and of the source model's weights (so a predictor never pairs an ONNX file with a retrained
model), and the largest difference from the model's own probabilities on a probe batch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.errors import ConfigError, GlyphlabError
from glyphlab.fileio import atomic_path, write_json
from glyphlab.models.base import GlyphModel

#: the default file name, beside manifest.json in the model folder
DEFAULT_NAME = "model.onnx"
SIDECAR_SUFFIX = ".json"
FORMAT = "glyphlab-onnx"
INPUT = "image"
OUTPUT = "probabilities"
#: largest absolute difference in probabilities accepted between ONNX Runtime and the model
TOLERANCE = 1e-4
OPSET = 18


class OnnxExportError(GlyphlabError):
    """The model cannot be exported to ONNX (unsupported kind, converter missing, or outputs differ)."""


def sidecar_path(onnx_path: str | Path) -> Path:
    p = Path(onnx_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def _probe(shape: tuple[int, int], n: int = 16, seed: int = 0) -> np.ndarray:
    """Images to compare outputs on: blank, full, random noise and random sparse strokes."""
    rng = np.random.default_rng(seed)
    h, w = shape
    x = rng.random((n, h, w), dtype=np.float32)
    x[0] = 0.0
    x[1] = 1.0
    sparse = rng.random((n // 2, h, w)) < 0.15
    x[2 : 2 + n // 2 - 2] = sparse[: n // 2 - 2].astype(np.float32)
    return x


def export_onnx(model_or_dir: GlyphModel | str | Path, out_path: str | Path | None = None) -> Path:
    """Write ``out_path`` (default: MODEL_DIR/model.onnx) and its sidecar; return the ONNX path."""
    from glyphlab.fileio import sha256_file
    from glyphlab.models.persistence import load_model, read_manifest, resolve_model_dir

    source_files: dict[str, str] = {}
    if isinstance(model_or_dir, GlyphModel):
        model = model_or_dir
        if out_path is None:
            raise ConfigError("export_onnx(model) needs out_path; only a saved model folder has a default")
    else:
        directory = resolve_model_dir(model_or_dir)
        manifest = read_manifest(directory)
        source_files = dict(manifest.get("files") or {})
        model = load_model(directory)
        if out_path is None:
            out_path = directory / DEFAULT_NAME
    model.check_fitted()
    shape = tuple(int(s) for s in (model.input_shape_ or ()))
    if len(shape) != 2:
        raise OnnxExportError(f"model '{model.name}' has no 2-D input shape ({shape}); cannot export")
    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise ConfigError(f"the ONNX output should end in .onnx, got {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)

    kind = model.onnx_kind
    if kind not in ("torch", "sklearn"):
        raise OnnxExportError(
            f"cannot export '{model.name}' ({type(model).__name__}) to ONNX: its class declares no onnx_kind; "
            "glyphlab's torch networks and scikit-learn pipelines (logreg, random-forest; others where skl2onnx "
            "converts them) export, other models are served without ONNX"
        )
    with atomic_path(out_path) as tmp:  # moved over out_path only once the graph matched the model
        if kind == "torch":
            _check_no_tta(model)
            layout = [None, *shape]
            # a temperature-scaled network (calibrate=temperature) divides its logits inside the graph too
            _export_torch(model.torch_module(), shape, tmp, temperature=float(getattr(model, "temperature_", 1.0)))
        else:
            layout = [None, shape[0] * shape[1]]
            _export_sklearn(model, tmp)
        columns = _columns(model)
        diff = _check(model, tmp, shape, columns)
    sidecar = {
        "format": FORMAT,
        "model": model.name,
        "kind": kind,
        "classes": list(model.classes_ or []),
        "input_shape": list(shape),
        "input": {"name": INPUT, "shape": layout, "dtype": "float32", "range": [0.0, 1.0], "ink": 1.0},
        "output": {"name": OUTPUT, "columns": columns},
        "opset": OPSET,
        "sha256": sha256_file(out_path),
        "source_files": source_files,
        "max_abs_diff": diff,
        "tolerance": TOLERANCE,
    }
    write_json(sidecar_path(out_path), sidecar)
    return out_path


def _check_no_tta(model: GlyphModel) -> None:
    for key in ("tta", "tta_rotations"):
        if int(model.params.get(key) or 0) > 0:
            raise OnnxExportError(
                f"cannot export '{model.name}' to ONNX: it averages test-time augmentation ({key}="
                f"{model.params[key]}), which the graph would not reproduce; set {key}=0 to export"
            )


def _columns(model: GlyphModel) -> list[int]:
    """Which of the model's classes each ONNX output column is (a scikit-learn fold may have lacked a class)."""
    if model.onnx_kind == "sklearn":
        return [int(c) for c in model.estimator_.classes_]
    return list(range(len(model.classes_ or [])))


def _export_torch(module: Any, shape: tuple[int, int], path: Path, temperature: float = 1.0) -> None:
    import torch
    import torch.nn as nn

    class WithSoftmax(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net(image.unsqueeze(1)).float() / temperature, dim=1)

    was_training = module.training
    device = next(iter(module.parameters())).device if any(True for _ in module.parameters()) else None
    module.eval()
    wrapper = WithSoftmax(module).cpu().eval()
    example = torch.zeros((2, *shape), dtype=torch.float32)
    quiet = [
        logging.getLogger(n) for n in ("torch.onnx", "torch.onnx._internal.exporter._registration", "torch.export")
    ]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
                external_data=False,  # one file: the sidecar's SHA-256 then covers the weights too
            )
    except Exception as exc:
        raise OnnxExportError(f"torch.onnx.export failed for this network: {exc}") from None
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
        if device is not None:
            module.to(device)
        module.train(was_training)


def _export_sklearn(model: Any, path: Path) -> None:
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        raise OnnxExportError("exporting scikit-learn models needs skl2onnx: pip install 'glyphlab[serve]'") from None
    est = model.estimator_
    n = int(np.prod(model.input_shape_))
    options = {id(est): {"zipmap": False}}
    try:
        onx = convert_sklearn(
            est,
            initial_types=[(INPUT, FloatTensorType([None, n]))],
            options=options,
            target_opset={"": OPSET, "ai.onnx.ml": 3},
        )
    except Exception as exc:
        raise OnnxExportError(
            f"skl2onnx cannot convert model '{model.name}' ({type(est).__name__}): {str(exc).splitlines()[0]}. "
            "logreg and random-forest are supported; serve other models without ONNX"
        ) from None
    # name the probability output like the torch graphs do
    prob = [o.name for o in onx.graph.output if "prob" in o.name.lower()]
    if not prob:
        raise OnnxExportError(f"skl2onnx produced no probability output for model '{model.name}'")
    label_outputs = [o for o in onx.graph.output if o.name != prob[0]]
    for o in label_outputs:
        onx.graph.output.remove(o)
    for node in onx.graph.node:
        node.output[:] = [OUTPUT if name == prob[0] else name for name in node.output]
    onx.graph.output[0].name = OUTPUT
    path.write_bytes(onx.SerializeToString())


def _check(model: GlyphModel, path: Path, shape: tuple[int, int], columns: list[int]) -> float:
    """Largest |ONNX - model| probability on a probe batch; refuse the export above TOLERANCE."""
    import onnxruntime as ort

    x = _probe(shape)
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        feed = x.reshape(len(x), -1) if len(inp.shape) == 2 else x
        got = np.asarray(sess.run([OUTPUT], {inp.name: feed})[0], dtype=np.float64)
    except Exception as exc:
        raise OnnxExportError(f"ONNX Runtime cannot run the exported graph: {exc}") from None
    want = np.asarray(model.predict_proba(x), dtype=np.float64)[:, columns]
    if got.shape != want.shape:
        raise OnnxExportError(f"the ONNX graph outputs {got.shape}, the model {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= TOLERANCE:
        raise OnnxExportError(
            f"the ONNX graph of model '{model.name}' differs from the model by {diff:.2e} (> {TOLERANCE:g}) on a "
            "probe batch; not exporting it"
        )
    return diff
