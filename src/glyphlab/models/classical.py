"""Classical models from scikit-learn and XGBoost, each a pipeline that carries its own preprocessing.

Every pipeline's first step is chosen so a saved model is self-contained: ``logreg`` standardises each
pixel (seed 003), ``pca-svm`` whitens with PCA (seed 002), trees use raw pixels (they are scale-free).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from glyphlab.errors import ModelFileError
from glyphlab.models.base import EpochCallback, GlyphModel, check_images
from glyphlab.models.params import POSITIVE, SEED, spec
from glyphlab.models.registry import register_model


def _estimator_args(params: dict[str, Any]) -> dict[str, Any]:
    """A model's parameters as its estimator's keywords: the same names, but for ``seed``, which scikit-learn and
    XGBoost call ``random_state`` (a model's ``defaults`` name exactly its estimator's arguments)."""
    return {("random_state" if k == "seed" else k): v for k, v in params.items()}


def _flat(images: np.ndarray) -> np.ndarray:
    images = check_images(images)
    return images.reshape(len(images), -1)


class SklearnModel(GlyphModel):
    """A scikit-learn estimator on flattened pixels, saved with skops (no pickle)."""

    weights_file = "model.skops"
    onnx_kind = "sklearn"

    def build_estimator(self) -> Any:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def _fit(
        self, images, labels, val_images, val_labels, *, run_dir: Path | None, callbacks: Sequence[EpochCallback] = ()
    ) -> None:
        counts = np.bincount(labels)
        self.min_class_count_ = int(counts[counts > 0].min())
        self.estimator_ = self.build_estimator()
        self.estimator_.fit(_flat(images), labels)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        self.check_fitted()
        X = _flat(images)
        self._check_shape(X)
        if hasattr(self.estimator_, "predict_proba"):
            proba = self.estimator_.predict_proba(X)
        else:  # an SVC that had too few images of some class to calibrate: softmax of its scores
            scores = np.asarray(self.estimator_.decision_function(X), dtype=np.float64)
            if scores.ndim == 1:
                scores = np.stack([-scores, scores], axis=1)
            scores -= scores.max(axis=1, keepdims=True)
            proba = np.exp(scores)
            proba /= proba.sum(axis=1, keepdims=True)
        # a fold that lacked a class: put the estimator's columns in their place among all classes
        full = np.zeros((len(X), len(self.classes_)), dtype=np.float64)
        full[:, np.asarray(self.estimator_.classes_, dtype=np.int64)] = proba
        return full

    def _check_shape(self, X: np.ndarray) -> None:
        expected = int(np.prod(self.input_shape_))
        if X.shape[1] != expected:
            raise ModelFileError(
                f"model '{self.name}' was trained on {self.input_shape_} images, got {X.shape[1]} pixels per image"
            )

    def _save_weights(self, directory: Path) -> list[str]:
        import skops.io as sio  # local: skops is slow to import and only saving/loading needs it

        sio.dump(self.estimator_, directory / self.weights_file)
        return [self.weights_file]

    def _load_weights(self, directory: Path, manifest: dict[str, Any]) -> None:
        import skops.io as sio  # local: skops is slow to import and only saving/loading needs it

        path = directory / self.weights_file
        untrusted = sio.get_untrusted_types(file=path)
        unexpected = [t for t in untrusted if t not in TRUSTED_TYPES]
        if unexpected:
            raise ModelFileError(
                f"{path} contains types glyphlab does not trust: {', '.join(unexpected)}; refusing to load it"
            )
        self.estimator_ = sio.load(path, trusted=untrusted)


#: beyond skops' defaults, exactly the types our own pipelines contain; anything else is refused
TRUSTED_TYPES = frozenset(
    {"sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration", "sklearn.tree._tree.Tree"}
)


@register_model("logreg", "logistic regression on standardised pixels (seeds 000, 001, 003)", "classical")
class LogReg(SklearnModel):
    defaults = {"C": 0.1, "max_iter": 200, "seed": 0}
    param_specs = {"C": POSITIVE, "max_iter": spec("int", low=1), "seed": SEED}

    def build_estimator(self) -> Pipeline:
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(**_estimator_args(self.params)),
        )

    def coefficient_images(self) -> np.ndarray | None:
        """The logistic regression's weights on the *standardised* pixels (per standard deviation of each pixel):
        dividing by the scaler's sigma (weights per raw pixel) blows up the near-constant border pixels, where
        the sign is the same but the picture unreadable. A fold that lacked a class leaves its image zero."""
        if self.classes_ is None or self.input_shape_ is None:
            return None
        last = self.estimator_.steps[-1][1]
        w = np.asarray(last.coef_, dtype=np.float64)
        full = np.zeros((len(self.classes_), w.shape[1]))
        cols = np.asarray(last.classes_, dtype=np.int64)
        if w.shape[0] == 1 and len(cols) == 2:  # binary: one row, the score of classes_[1] over classes_[0]
            full[cols[1]], full[cols[0]] = w[0] / 2, -w[0] / 2
        else:
            full[cols] = w
        return full.reshape(len(self.classes_), *self.input_shape_).astype(np.float32)


def _calibrated_svc(p: dict[str, Any], min_class_count: int) -> CalibratedClassifierCV | SVC:
    """An RBF SVC with probabilities from sigmoid calibration on internal folds (scikit-learn's replacement
    for the deprecated ``SVC(probability=True)``); one SVC is refit on all the data.

    Calibration needs every class in every fold: up to 3 folds, fewer when a class has fewer images, and
    none when a class has a single image (seed 001 has one) — then probabilities are a softmax of the scores.
    ``calibrate=False`` asks for that softmax directly: one SVC fit instead of four, which is what a
    hyper-parameter search wants when it scores accuracy only (the argmax needs no calibration).
    """
    svc = SVC(C=p["C"], gamma=p["gamma"], random_state=p["seed"])
    if min_class_count < 2 or not p["calibrate"]:
        return svc
    return CalibratedClassifierCV(svc, method="sigmoid", cv=min(3, min_class_count), ensemble=False)


@register_model("svm", "RBF support-vector machine on raw pixels (seed 001)", "classical")
class SVM(SklearnModel):
    defaults = {"C": 10.0, "gamma": "scale", "calibrate": True, "seed": 0}
    param_specs = {
        "C": POSITIVE,
        "gamma": spec("str", "number", low=0, low_open=True, choices=("scale", "auto")),
        "seed": SEED,
    }

    def build_estimator(self) -> CalibratedClassifierCV:
        return _calibrated_svc(self.params, self.min_class_count_)


@register_model("pca-svm", "PCA(whiten) then RBF SVM (seed 002's pipeline)", "classical")
class PCASVM(SklearnModel):
    defaults = {"n_components": 50, "C": 10.0, "gamma": "scale", "calibrate": True, "seed": 0}
    # n_components: a count of components, or (0, 1) the share of variance to keep (scikit-learn's PCA)
    param_specs = {**SVM.param_specs, "n_components": spec("number", low=0, low_open=True)}

    def build_estimator(self) -> Pipeline:
        n_features = int(np.prod(self.input_shape_))
        n = self.params["n_components"]
        if isinstance(n, int):
            n = min(n, n_features)
        return make_pipeline(
            PCA(n_components=n, whiten=True, random_state=self.params["seed"]),
            _calibrated_svc(self.params, self.min_class_count_),
        )


@register_model("random-forest", "random forest on raw pixels (seeds 003, 004)", "classical")
class RandomForest(SklearnModel):
    defaults = {"n_estimators": 200, "max_depth": None, "max_features": "sqrt", "n_jobs": -1, "seed": 0}
    param_specs = {
        "n_estimators": spec("int", low=1),
        "max_depth": spec("none", "int", low=1),
        "max_features": spec("none", "str", "number", low=0, low_open=True, choices=("sqrt", "log2")),
        "seed": SEED,
    }

    def build_estimator(self) -> RandomForestClassifier:
        return RandomForestClassifier(**_estimator_args(self.params))


@register_model("xgboost", "gradient-boosted trees, XGBoost hist (seed 004)", "classical")
class XGBoost(GlyphModel):
    """XGBoost through its scikit-learn API, saved in XGBoost's own JSON format (data, not code).

    Chosen over LightGBM because seed 004 uses XGBoost; the ``xgboost-cpu`` wheel keeps the install
    free of CUDA libraries.
    """

    defaults = {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.3, "subsample": 1.0, "n_jobs": -1, "seed": 0}
    param_specs = {
        "n_estimators": spec("int", low=1),
        "max_depth": spec("int", low=0),
        "learning_rate": POSITIVE,
        "subsample": spec("number", low=0, high=1, low_open=True),
        "seed": SEED,
    }
    weights_file = "model.xgb.json"

    def _build(self):
        from xgboost import XGBClassifier  # local: xgboost is slow to import and only this model needs it

        return XGBClassifier(**_estimator_args(self.params), tree_method="hist")

    def _fit(
        self, images, labels, val_images, val_labels, *, run_dir: Path | None, callbacks: Sequence[EpochCallback] = ()
    ) -> None:
        # XGBoost needs labels 0..K-1; a fold may lack some classes, so encode the present ones
        self.present_ = np.unique(labels)
        encoded = np.searchsorted(self.present_, labels)
        self.booster_model_ = self._build()
        self.booster_model_.fit(_flat(images), encoded)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        self.check_fitted()
        X = _flat(images)
        proba = self.booster_model_.predict_proba(X)
        full = np.zeros((len(X), len(self.classes_)), dtype=np.float64)
        full[:, self.present_] = proba
        return full

    def _save_weights(self, directory: Path) -> list[str]:
        self.booster_model_.save_model(directory / self.weights_file)
        return [self.weights_file]

    def _manifest_extra(self) -> dict[str, Any]:
        return {"present_classes": self.present_.tolist()}

    def _load_weights(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.booster_model_ = self._build()
        self.booster_model_.load_model(directory / self.weights_file)
        self.present_ = np.asarray(manifest["extra"]["present_classes"], dtype=np.int64)
