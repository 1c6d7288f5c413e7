"""The one small interface every glyphlab model has.

Models take images as (N, H, W) float32 arrays in [0, 1] and integer labels; they flatten or add
channels themselves, so a caller never needs to know the family. Constructor arguments are kept exactly
as given in ``params`` (like scikit-learn), learned state lives in attributes ending with ``_``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from glyphlab.data.images import Preprocessing
from glyphlab.errors import ConfigError
from glyphlab.models.params import Spec, check_params

#: called with each finished epoch's history row by models that train in epochs (networks); others never call it
EpochCallback = Callable[[dict[str, Any]], None]


class GlyphModel(ABC):
    #: registry name, set by ``@register_model``
    name: ClassVar[str] = ""
    #: every accepted parameter with its default; unknown parameters are an error, not silently ignored
    defaults: ClassVar[dict[str, Any]] = {}
    #: networks use the validation split for early stopping; classical models are fit on train+val
    uses_validation: ClassVar[bool] = False
    #: trains data-parallel under torchrun (every rank fits it together); False: rank 0 fits it alone
    data_parallel: ClassVar[bool] = False
    #: types and ranges of parameters beyond what each default's type implies (``models/params.py``)
    param_specs: ClassVar[dict[str, Spec]] = {}
    #: the file ``_load_weights`` reads; ``load_model`` refuses a manifest that does not list (and hash) it
    weights_file: ClassVar[str | None] = None

    # -- capabilities: declared by each family (like scikit-learn's tags), never probed by the tools that use them
    #: how ``export_onnx`` converts a fitted model: ``"torch"`` (its :meth:`torch_module` through torch.onnx),
    #: ``"sklearn"`` (its scikit-learn pipeline ``estimator_`` through skl2onnx) or None (it cannot be exported)
    onnx_kind: ClassVar[Literal["torch", "sklearn"] | None] = None

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ConfigError(
                f"model '{self.name}' has no parameter(s) {', '.join(sorted(unknown))}; "
                f"it takes: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        check_params(self.name, params, self.defaults, self.param_specs)
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.classes_: list[str] | None = None
        self.input_shape_: tuple[int, int] | None = None
        self.preprocessing_: Preprocessing | None = None
        self.history_: list[dict[str, float]] = []

    # -- parameters -------------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return dict(self.params)

    def set_params(self, **params: Any) -> GlyphModel:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ConfigError(f"model '{self.name}' has no parameter(s) {', '.join(sorted(unknown))}")
        check_params(self.name, params, self.defaults, self.param_specs)
        self.params.update(params)
        return self

    # -- learning ---------------------------------------------------------------------------------
    def fit(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        val_images: np.ndarray | None = None,
        val_labels: np.ndarray | None = None,
        *,
        classes: Sequence[str] | None = None,
        run_dir: Path | None = None,
        callbacks: Sequence[EpochCallback] = (),
        preprocessing: Preprocessing | None = None,
    ) -> GlyphModel:
        """Learn from images (N, H, W). ``classes`` fixes the output columns even when a fold lacks a class.

        ``run_dir`` is where a model may keep checkpoints and curves while it trains (networks do).
        ``callbacks`` are called with every finished epoch's history row (a search reports progress to its
        pruner this way; an exception a callback raises ends training); models without epochs ignore them.
        ``preprocessing`` says how the images were made (the dataset's record, e.g. an image folder's
        :class:`~glyphlab.data.images.ImageConfig`); it is saved in the manifest, so predicting and serving
        prepare new images the same way. Without it the images are arrays as given.
        """
        images = check_images(images)
        labels = np.ascontiguousarray(labels, dtype=np.int64)  # a reversed view, like the images, is copied
        if len(images) != len(labels):
            raise ConfigError(f"{len(images)} images but {len(labels)} labels")
        n_classes = len(classes) if classes is not None else int(labels.max()) + 1
        self.classes_ = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        self.input_shape_ = (int(images.shape[1]), int(images.shape[2]))
        self.preprocessing_ = preprocessing or Preprocessing.arrays(self.input_shape_)
        if preprocessing is not None and tuple(preprocessing.config.canvas) != self.input_shape_:
            raise ConfigError(
                f"the preprocessing makes {preprocessing.config.canvas} images but the model is "
                f"fit on {self.input_shape_} images"
            )
        if val_images is not None:
            val_images = check_images(val_images)
            val_labels = np.ascontiguousarray(val_labels, dtype=np.int64)
        self._fit(images, labels, val_images, val_labels, run_dir=run_dir, callbacks=tuple(callbacks))
        return self

    @abstractmethod
    def _fit(
        self, images, labels, val_images, val_labels, *, run_dir: Path | None, callbacks: Sequence[EpochCallback] = ()
    ) -> None: ...

    @abstractmethod
    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, n_classes) probabilities, columns in the order of ``classes_``."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_proba(images)).argmax(axis=1)

    def features(self, images: np.ndarray) -> np.ndarray:
        """A representation for feature maps (t-SNE): the penultimate layer for networks.

        The default is the flattened pixels; models with a better representation override it.
        """
        return check_images(images).reshape(len(images), -1)

    def score(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(images) == np.asarray(labels)).mean())

    def torch_module(self) -> Any | None:
        """The torch ``nn.Module`` that predicts ((N, 1, H, W) images -> logits, normalisation inside), for ONNX
        export and gradient attributions (Integrated Gradients, Grad-CAM); None for a model that is no torch
        network, or one not fitted yet."""
        return None

    def coefficient_images(self) -> np.ndarray | None:
        """(n_classes, H, W) weights of a linear model on its pixels (the ``coef`` explanation: what each class's
        template looks like); None for a model that has none."""
        return None

    # -- persistence ------------------------------------------------------------------------------
    @abstractmethod
    def _save_weights(self, directory: Path) -> list[str]:
        """Write the learned state into ``directory``; return the file names written."""

    @abstractmethod
    def _load_weights(self, directory: Path, manifest: dict[str, Any]) -> None:
        """Restore learned state from files that ``load_model`` has already checked by SHA-256."""

    def _manifest_extra(self) -> dict[str, Any]:
        """Model-specific facts to keep in the manifest (e.g. normalisation constants)."""
        return {}

    def save(self, directory: str | Path) -> Path:
        from glyphlab.models.persistence import save_model  # local: persistence imports this module

        return save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path) -> GlyphModel:
        from glyphlab.models.persistence import load_model  # local: persistence imports this module

        return load_model(directory)

    def check_fitted(self) -> None:
        if self.classes_ is None:
            raise ConfigError(f"model '{self.name}' is not fitted yet: call fit() or load a saved model")

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.params.items() if self.defaults.get(k) != v}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"


def training_arrays(
    model: GlyphModel,
    images: np.ndarray,
    labels: np.ndarray,
    val_images: np.ndarray | None,
    val_labels: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """What ``model`` is fit on, given a train and a validation split: networks (``uses_validation``) keep the
    validation split for early stopping; the others have no use for it and are fit on train+val."""
    if model.uses_validation:
        return images, labels, val_images, val_labels
    if val_images is not None and val_labels is not None and len(val_images):
        return np.concatenate([images, val_images]), np.concatenate([labels, val_labels]), None, None
    return images, labels, None, None


#: values this far outside [0, 1] are rounding (e.g. of a resampling filter) and are clipped, not refused
RANGE_TOLERANCE = 1e-4


def check_images(images: np.ndarray) -> np.ndarray:
    """Validate once, at the boundary: (N, H, W) float32 in [0, 1], finite, C-contiguous.

    Arrays outside [0, 1] are refused (uint8 0-255 images with a message to divide by 255) instead of being
    learned from or predicted on silently wrong; negative-stride or other non-contiguous views are copied.
    """
    arr = np.asarray(images)
    if arr.ndim == 2:  # a single image
        arr = arr[None]
    if arr.ndim != 3:
        raise ConfigError(f"expected images of shape (N, H, W), got {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise ConfigError(f"expected numeric images, got dtype {arr.dtype}")
    if arr.dtype.kind in "iu" and arr.size and int(arr.max()) > 1:
        raise ConfigError(
            f"images are {arr.dtype} with values up to {int(arr.max())}: glyphlab models take "
            "float images in [0, 1] (1 = ink); divide by 255 first (images / 255.0)"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ConfigError("images contain NaN or infinite values")
    if arr.size:
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            hint = " (divide by 255 first: images / 255.0)" if hi > 1 and lo >= 0 and hi <= 255 else ""
            raise ConfigError(
                f"images have values in [{lo:g}, {hi:g}]; glyphlab models take images in [0, 1] "
                f"(0 = background, 1 = ink){hint}"
            )
        if lo < 0 or hi > 1:
            arr = np.clip(arr, 0.0, 1.0)
    return arr
