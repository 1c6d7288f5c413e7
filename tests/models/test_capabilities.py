"""Capabilities are declared on the model class (like scikit-learn's tags), not probed: every registered family
states whether it exports to ONNX (``onnx_kind``), has a torch module to explain through (``torch_module()``)
and coefficient images (``coefficient_images()``); a family that declares none gets a clear refusal."""

import numpy as np
import pytest

from glyphlab.errors import ConfigError
from glyphlab.evaluation.attributions import Explainer, resolve_method
from glyphlab.models.base import GlyphModel
from glyphlab.models.registry import create_model, list_models, missing_models

#: name -> (onnx_kind, a torch network, coefficient images); a new family adds its line here
DECLARED = {
    "logreg": ("sklearn", False, True),
    "svm": ("sklearn", False, False),
    "pca-svm": ("sklearn", False, False),
    "random-forest": ("sklearn", False, False),
    "xgboost": (None, False, False),
    "ensemble": (None, False, False),
    "mlp": ("torch", True, False),
    "cnn-small": ("torch", True, False),
    "cnn-deep": ("torch", True, False),
    "resnet-small": ("torch", True, False),
    "cnn-fast": ("torch", True, False),
    "rot-cnn": ("torch", True, False),
    "efficientnet-b0": ("torch", True, False),
}


def _declares(cls: type, method: str) -> bool:
    return getattr(cls, method) is not getattr(GlyphModel, method)


def test_every_registered_family_declares_its_capabilities():
    assert {s.name for s in list_models()} | set(missing_models()) == set(DECLARED)
    for spec in list_models():
        kind, net, coef = DECLARED[spec.name]
        assert spec.cls.onnx_kind == kind, spec.name
        assert _declares(spec.cls, "torch_module") == net, spec.name
        assert _declares(spec.cls, "coefficient_images") == coef, spec.name


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    x = rng.random((60, 8, 8), dtype=np.float32)
    y = np.arange(60) % 3
    return x, y


@pytest.mark.parametrize(
    "name, params", [("logreg", {}), ("random-forest", {"n_estimators": 5}), ("mlp", {"epochs": 1})]
)
def test_a_fitted_model_answers_as_its_class_declares(digits, name, params):
    x, y = digits
    model = create_model(name, **params)
    assert model.torch_module() is None and model.coefficient_images() is None  # not fitted: nothing yet
    model.fit(x, y, x[:9], y[:9])
    _, net, coef = DECLARED[name]
    assert (model.torch_module() is not None) == net
    images = model.coefficient_images()
    assert (images is not None) == coef
    if coef:
        assert images.shape == (3, 8, 8) and np.abs(images).max() > 0


class Undeclared(GlyphModel):
    """A new family that declares no capability."""

    name = "undeclared"

    def _fit(self, images, labels, val_images, val_labels, *, run_dir, callbacks=()):
        pass

    def predict_proba(self, images):
        p = np.zeros((len(images), 2))
        p[:, 0] = np.asarray(images).reshape(len(images), -1).mean(axis=1)
        p[:, 1] = 1 - p[:, 0]
        return p

    def _save_weights(self, directory):
        return []

    def _load_weights(self, directory, manifest):
        pass


def test_a_family_without_declarations_is_refused_export_and_gradients_by_name(tmp_path, digits):
    from glyphlab.serving.onnx_export import OnnxExportError, export_onnx

    model = Undeclared().fit(digits[0], digits[1] % 2)
    with pytest.raises(OnnxExportError, match=r"cannot export 'undeclared' \(Undeclared\) to ONNX: .*no onnx_kind"):
        export_onnx(model, tmp_path / "u.onnx")
    for method in ("ig", "gradcam"):
        with pytest.raises(ConfigError, match=f"cannot explain 'undeclared' with {method}: .*no torch_module"):
            resolve_method(model, method)
    with pytest.raises(ConfigError, match="cannot explain 'undeclared' with coef: .*no coefficient_images"):
        resolve_method(model, "coef")
    assert resolve_method(model, "auto") == "occlusion"  # what every model can do
    expl = Explainer(model).explain(digits[0][:2], method="auto")
    assert expl.method == "occlusion" and expl.attributions.shape[0] == 2
