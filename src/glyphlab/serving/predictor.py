"""A predictor for a saved model: ONNX Runtime when a checked ONNX file sits beside the model, else the model.

The model folder is loaded through :func:`~glyphlab.models.persistence.load_model`, so its weights are
SHA-256 checked; a network's folder with a usable ONNX export is served by ONNX Runtime alone when PyTorch is
not installed (``pip install 'glyphlab[serve]'`` without the ``torch`` extra): every file of the manifest is
still hash-checked, and explanations fall back to occlusion through the ONNX graph.
An ONNX file (``MODEL_DIR/model.onnx`` by default, written by ``glyphlab export``) is
used only when its sidecar says it was exported from exactly these weights and the file's own SHA-256
matches; otherwise the predictor falls back to the model and says why in :attr:`Predictor.onnx_note`.

Images (files, uploads, pixel arrays of another size) are prepared with exactly the
:class:`~glyphlab.data.images.ImageConfig` the manifest records (:attr:`Predictor.preprocessing`); an image
with no ink raises :class:`~glyphlab.data.images.NoInkError` instead of getting a confident answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from glyphlab.data.images import (
    SEVERAL_GLYPHS,
    DecodeLimits,
    NoInkError,
    PreparedImage,
    SeveralGlyphsError,
    prepare_bytes,
    prepare_file,
    prepare_pixels,
)
from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.base import check_images
from glyphlab.serving.onnx_export import DEFAULT_NAME, FORMAT, OUTPUT, sidecar_path

Backend = Literal["auto", "onnx", "native"]


class Predictor:
    """Probabilities for (N, H, W) images in [0, 1] (ink = 1), plus helpers to turn them into answers."""

    #: what an image with no ink is told
    NO_INK = (
        "no ink: the image is blank (nothing stands out from its background), so there is nothing to "
        "classify; draw or scan a glyph"
    )

    def __init__(
        self,
        model_path: str | Path,
        *,
        backend: Backend = "auto",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        batch_size: int = 1024,
        onnx_alone: bool = False,
    ) -> None:
        """``onnx_alone``: when the ONNX export checks out, serve from it and the manifest without loading the model
        itself (no scikit-learn, skops or PyTorch import: a batch job's worker starts in a fraction of the time); the
        model is loaded as usual when the export is absent or stale, or ``backend`` is ``native``."""
        from glyphlab.models.persistence import load_model, read_manifest, resolve_model_dir

        if backend not in ("auto", "onnx", "native"):
            raise ConfigError(f"backend must be auto, onnx or native, got {backend!r}")
        self.directory = resolve_model_dir(model_path)
        self.manifest: dict[str, Any] = read_manifest(self.directory)
        candidate = Path(onnx_path) if onnx_path is not None else self.directory / DEFAULT_NAME
        self.model = self._onnx_only(backend, candidate, onnx_alone) or load_model(self.directory)
        self._describe()
        self.batch_size = int(batch_size)
        self.onnx_note = ""
        self._session = None
        self.onnx_path: Path | None = None
        if backend != "native":
            self._session = self._open_onnx(candidate, threads)
            if self._session is None and isinstance(self.model, OnnxOnlyModel) and self.model.extra is None:
                self.model = load_model(self.directory)  # onnx_alone, but the export did not check out
                self._describe()
            elif self._session is None and isinstance(self.model, OnnxOnlyModel):
                raise ModelFileError(
                    f"{self.directory} holds a '{self.model_name}' model, which needs "
                    f"glyphlab[{self.model.extra}] (pip install 'glyphlab[{self.model.extra}]'), "
                    f"and its ONNX export cannot be used instead: {self.onnx_note}"
                )
            if self._session is None and backend == "onnx":
                raise ModelFileError(f"cannot use ONNX for {self.directory}: {self.onnx_note}")
        self.backend: str = "onnxruntime" if self._session is not None else "native"
        if self._session is None and hasattr(self.model, "module_"):
            import torch

            if threads:
                torch.set_num_threads(int(threads))

    def _describe(self) -> None:
        """Classes, input shape, preprocessing and id from the manifest and ``self.model`` (or its stand-in)."""
        from glyphlab.models.persistence import manifest_preprocessing

        self.classes: list[str] = [str(c) for c in (self.model.classes_ or [])]
        self.input_shape: tuple[int, int] = tuple(int(s) for s in (self.model.input_shape_ or ()))  # type: ignore[assignment]
        if len(self.input_shape) != 2:
            raise ModelFileError(f"{self.directory}: the manifest has no 2-D input shape")
        self.preprocessing = manifest_preprocessing(self.manifest, self.directory)
        if tuple(self.preprocessing.config.canvas) != self.input_shape:
            raise ModelFileError(
                f"{self.directory}: the manifest's preprocessing makes "
                f"{self.preprocessing.config.canvas} images but the model takes {self.input_shape}"
            )
        self.image_config = self.preprocessing.config
        self.model_name: str = str(self.manifest.get("model"))
        files = self.manifest.get("files") or {}
        # the weights' digest names the model (not the card's or calibration's, which sort before it)
        weights = getattr(self.model, "weights_file", None)
        digest = str(files.get(weights) or files[sorted(files)[0]]) if files else "0" * 12
        self.model_id = f"{self.model_name}-{digest[:12]}"

    # -- ONNX -------------------------------------------------------------------------------------
    def _onnx_only(self, backend: str, onnx_file: Path, onnx_alone: bool = False) -> OnnxOnlyModel | None:
        """A stand-in for the model when an ONNX export can serve it: for a model whose family this install cannot
        import (a network without PyTorch), or for any model with ``onnx_alone``; None when the model itself is to
        load (or nothing could serve it: load_model says why)."""
        from glyphlab.models.persistence import verify_files
        from glyphlab.models.registry import missing_extra

        if backend == "native" or not onnx_file.is_file():
            return None
        name = self.manifest.get("model")
        # onnx_alone asks no family (importing it is what it avoids); else only a family that does not import
        extra = None if onnx_alone else missing_extra(name) if isinstance(name, str) else None
        if not extra and not onnx_alone:
            return None
        verify_files(self.directory, self.manifest)
        return OnnxOnlyModel(self, extra)

    def _open_onnx(self, path: Path, threads: int | None):
        from glyphlab.fileio import sha256_file

        if not path.is_file():
            self.onnx_note = f"no ONNX file at {path} (glyphlab export MODEL makes one)"
            return None
        side = sidecar_path(path)
        try:
            meta = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            self.onnx_note = f"{side} is missing or unreadable ({exc}); re-export"
            return None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            self.onnx_note = f"{side} is not a glyphlab ONNX sidecar"
            return None
        if meta.get("source_files") != self.manifest.get("files"):
            self.onnx_note = f"{path} was exported from other weights than {self.directory}'s; re-export"
            return None
        if meta.get("sha256") != sha256_file(path):
            self.onnx_note = f"{path} does not match the SHA-256 in its sidecar (changed after export); re-export"
            return None
        if list(meta.get("classes") or []) != list(self.model.classes_ or []) or tuple(
            meta.get("input_shape") or ()
        ) != tuple(self.input_shape):
            self.onnx_note = f"{path} has other classes or input shape than the model; re-export"
            return None
        try:
            import onnxruntime as ort
        except ImportError:
            self.onnx_note = "onnxruntime is not installed (pip install 'glyphlab[serve]')"
            return None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            self.onnx_note = f"ONNX Runtime cannot load {path}: {exc}"
            return None
        self._input = sess.get_inputs()[0]
        self._flat = len(self._input.shape) == 2
        self._columns = np.asarray(
            (meta.get("output") or {}).get("columns") or range(len(self.classes)), dtype=np.int64
        )
        self.onnx_path = path
        self.onnx_meta = meta
        self.onnx_note = f"using {path}"
        return sess

    # -- inference --------------------------------------------------------------------------------
    def predict(self, images: np.ndarray | Sequence[str | Path], return_inputs: bool = False):
        """(N, n_classes) float32 probabilities for (N, H, W) images of the model's input shape, or for a list of
        image files (each prepared by :meth:`prepare_file`, as ``glyphlab predict`` and the server do).

        ``return_inputs=True`` returns ``(probabilities, inputs)``: what the model saw, (N, H, W) in [0, 1]
        (for files, the prepared pictures; ``glyphlab predict --show-inputs`` writes them as PNGs)."""
        if isinstance(images, (list, tuple)) and images and all(isinstance(i, (str, Path)) for i in images):
            images = np.stack([self._prepare_named(p) for p in images])
        if return_inputs:
            inputs = np.clip(check_images(images), 0.0, 1.0)
            return self.predict(inputs), inputs
        x = check_images(images)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(f"the model takes {self.input_shape} images, got {tuple(x.shape[1:])}")
        x = np.clip(x, 0.0, 1.0)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        if self._session is None:
            return np.asarray(self.model.predict_proba(x), dtype=np.float32)
        out = np.zeros((len(x), len(self.classes)), dtype=np.float32)
        for i in range(0, len(x), self.batch_size):
            xb = np.ascontiguousarray(x[i : i + self.batch_size])
            feed = xb.reshape(len(xb), -1) if self._flat else xb
            out[i : i + len(xb), self._columns] = self._session.run([OUTPUT], {self._input.name: feed})[0]
        return out

    def warm_up(self, max_batch: int = 32) -> None:
        """Run blank batches of 1 and ``max_batch`` images once, so that the first requests do not pay for the
        runtime's first-call set-up and memory-arena growth (a server calls this before it takes requests)."""
        for n in sorted({1, max(1, min(int(max_batch), self.batch_size))}):
            self.predict(np.zeros((n, *self.input_shape), dtype=np.float32))

    def predict_bytes(self, blobs: Iterable[bytes], limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
        return self.predict(np.stack([self.prepare_bytes(b, limits) for b in blobs]))

    def prepare_bytes(self, data: bytes, limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
        """Image bytes -> the model input, prepared as the manifest says (:class:`NoInkError` when blank)."""
        return self._inked(prepare_bytes(data, self.image_config, limits))

    def prepare_file(self, path: str | Path, limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
        """An image file -> the model input, prepared as the manifest says (:class:`NoInkError` when blank)."""
        return self._inked(prepare_file(path, self.image_config, limits))

    def _prepare_named(self, path: str | Path) -> np.ndarray:
        """:meth:`prepare_file`, its refusals naming the file (one blank page in a list of files says which)."""
        try:
            return self.prepare_file(path)
        except (NoInkError, SeveralGlyphsError) as exc:
            raise type(exc)(f"{path}: {exc}") from None

    def prepare_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Ink = 1 pixels -> the model input: as they are at the input shape, else prepared as the manifest says."""
        return self._inked(prepare_pixels(pixels, self.image_config))

    def _inked(self, prepared: PreparedImage) -> np.ndarray:
        return model_input(prepared)

    # -- answers ----------------------------------------------------------------------------------
    def top_k(self, probs: np.ndarray, k: int = 3) -> list[list[dict[str, Any]]]:
        """Per image, the k most probable classes: ``{"label", "class_name", "probability"}``, best first."""
        probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
        k = max(1, min(int(k), probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k].tolist()
        # Python numbers from one tolist() per array: per-element int()/float() was a third of a request's answer
        return [
            [{"label": j, "class_name": self.classes[j], "probability": values[j]} for j in idx]
            for values, idx in zip(probs.tolist(), order)
        ]

    def describe(self, probs_row: Sequence[float], k: int = 3) -> dict[str, Any]:
        """One image's answer: label, class_name, probabilities (class -> p), top (k best)."""
        row = np.asarray(probs_row, dtype=np.float64)
        top = self.top_k(row[None], k)[0]
        return {
            "label": top[0]["label"],
            "class_name": top[0]["class_name"],
            "probabilities": dict(zip(self.classes, row.tolist())),
            "top": top,
        }

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model": self.model_name,
            "classes": self.classes,
            "input_shape": list(self.input_shape),
            "backend": self.backend,
            "onnx": str(self.onnx_path) if self.onnx_path else None,
            "onnx_note": self.onnx_note,
            "preprocessing": self.preprocessing.to_dict(),
            "preprocessing_text": self.image_config.describe(),
        }


class OnnxOnlyModel:
    """What the server needs of a model (classes, input shape, probabilities) from its manifest and ONNX graph, for a
    model family this install cannot import (glyphlab[torch] not installed), or that a batch worker need not import
    (``Predictor(..., onnx_alone=True)``)."""

    def __init__(self, predictor: Predictor, extra: str | None) -> None:
        """``extra``: what would install the model's family; None when it is installed (``onnx_alone``)."""
        manifest = predictor.manifest
        self.name = str(manifest.get("model"))
        self.extra = extra
        self.classes_ = list(manifest.get("classes") or [])
        self.input_shape_ = tuple(manifest.get("input_shape") or ()) or None
        self.preprocessing_ = None
        files = sorted(manifest.get("files") or {})
        # the same model_id as with the family loaded: networks keep their weights in a .safetensors file,
        # scikit-learn models in a .skops file, XGBoost in a .xgb.json file (each family's ``weights_file``)
        self.weights_file = next((f for f in files if f.endswith((".safetensors", ".skops", ".xgb.json"))), None)
        self._predictor = predictor

    def check_fitted(self) -> None:
        """A saved model is fitted (the GlyphModel interface the explainer asks for)."""

    def torch_module(self) -> None:
        """No network here (its family needs glyphlab[torch]): the explainer offers occlusion only."""

    def coefficient_images(self) -> None:
        """No coefficients: only networks are served through ONNX alone."""

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        if self._predictor._session is None:
            raise ModelFileError(f"'{self.name}' needs glyphlab[{self.extra}] without its ONNX export")
        return self._predictor.predict(images)


def model_input(prepared: PreparedImage) -> np.ndarray:
    """A prepared image's pixels, or the refusal every front door gives: a blank image (:class:`NoInkError`) or a
    picture of several characters (:class:`SeveralGlyphsError`) gets no confident answer."""
    if prepared.no_ink:
        raise NoInkError(Predictor.NO_INK)
    if prepared.others:
        raise SeveralGlyphsError(SEVERAL_GLYPHS.format(n=prepared.others + 1))
    return prepared.pixels
