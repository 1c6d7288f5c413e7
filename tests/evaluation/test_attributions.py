"""Attributions: shapes, determinism, agreement with a linear model's coefficients and with Captum, IG completeness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glyphlab.errors import ConfigError
from glyphlab.evaluation.attributions import (
    Explainer,
    has_captum,
    occlusion_map,
    occlusion_window,
    overlay_rgb,
)
from glyphlab.models.registry import create_model

needs_captum = pytest.mark.skipif(
    not has_captum(), reason="ig, gradcam and Captum's occlusion need pip install 'glyphlab[explain]'"
)


@pytest.fixture(scope="module")
def cnn(digits):
    tr = digits.splits["train"]
    model = create_model("cnn-small", epochs=1, progress=False, device="cpu", patience=0)
    return model.fit(tr.images[:400], tr.labels[:400], tr.images[400:500], tr.labels[400:500], classes=digits.classes)


@needs_captum
@pytest.mark.parametrize("method", ["ig", "gradcam", "occlusion"])
def test_network_attributions_have_the_image_shape_and_repeat_exactly(cnn, digits, method):
    x = digits.splits["test"].images[:3]
    a = Explainer(cnn).explain(x, method, seed=0)
    b = Explainer(cnn).explain(x, method, seed=0)  # a fresh copy of the network, same answer
    assert a.method == method
    assert a.attributions.shape == (3, 2, 8, 8) and a.contrast.shape == (3, 8, 8)
    assert np.isfinite(a.attributions).all() and np.abs(a.attributions).max() > 0
    np.testing.assert_array_equal(a.attributions, b.attributions)
    # the two targets are the predicted class and the runner-up
    order = np.argsort(-cnn.predict_proba(x), axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(a.targets, order)


@needs_captum
def test_integrated_gradients_add_up_to_the_logit_difference(cnn, digits):
    """Completeness: the IG map sums to logit(x) - logit(blank) for its class (up to the quadrature error)."""
    x = digits.splits["test"].images[:4]
    e = Explainer(cnn).explain(x, "ig", steps=64)
    net = cnn.torch_module().eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(x)[:, None]).numpy()
        blank = net(torch.zeros(1, 1, 8, 8)).numpy()[0]
    for k in range(2):
        expected = logits[np.arange(4), e.targets[:, k]] - blank[e.targets[:, k]]
        np.testing.assert_allclose(e.attributions[:, k].sum(axis=(1, 2)), expected, atol=0.02 * np.abs(expected).max())


@needs_captum
def test_numpy_occlusion_matches_captums(cnn, digits):
    """The model-agnostic occlusion (numpy, any predict_proba) is Captum's Occlusion rule: same numbers on a net."""
    x = digits.splits["test"].images[:2]
    e = Explainer(cnn).explain(x, "occlusion")
    window, stride = occlusion_window((8, 8))
    ours = occlusion_map(cnn.predict_proba, x, e.targets, window, stride)
    np.testing.assert_allclose(ours, e.attributions, atol=1e-5)


def test_occlusion_of_a_linear_model_agrees_in_sign_with_its_coefficients():
    """Binary logistic regression: hiding one inked pixel lowers p(class 1) exactly where its weight is positive."""
    rng = np.random.default_rng(0)
    n, side = 300, 6
    template = rng.normal(size=(side, side))
    x = rng.uniform(0.2, 1.0, size=(n, side, side)).astype(np.float32)  # ink on every pixel
    y = ((x * template).sum(axis=(1, 2)) > (0.6 * template).sum()).astype(np.int64)
    model = create_model("logreg", C=0.05).fit(x, y, classes=["a", "b"])
    coef = model.coefficient_images()
    assert coef is not None and coef.shape == (2, side, side)
    e = Explainer(model).explain(x[:20], "occlusion", targets=np.tile([1, 0], (20, 1)))
    assert e.params["window"] == 1  # one pixel at a time on this small input
    w = np.sign(coef[1])
    assert (np.sign(e.attributions[:, 0]) == w).all()
    assert (np.sign(e.attributions[:, 1]) == -w).all()
    c = Explainer(model).explain(x[:2], "coef", targets=np.tile([1, 0], (2, 1)))
    np.testing.assert_array_equal(c.attributions[0, 0], coef[1])


def test_methods_that_do_not_apply_say_what_to_use(digits):
    tr = digits.splits["train"]
    forest = create_model("random-forest", n_estimators=5, n_jobs=1).fit(
        tr.images[:200], tr.labels[:200], classes=digits.classes
    )
    ex = Explainer(forest)
    with pytest.raises(ConfigError, match="use occlusion"):
        ex.explain(tr.images[:1], "ig")
    with pytest.raises(ConfigError, match="linear model"):
        ex.explain(tr.images[:1], "coef")
    with pytest.raises(ConfigError, match="choose one of"):
        ex.explain(tr.images[:1], "shap")
    assert ex.explain(tr.images[:1]).method == "occlusion"  # auto: model-agnostic


@needs_captum
def test_mlp_has_no_gradcam(digits):
    tr = digits.splits["train"]
    mlp = create_model("mlp", epochs=1, progress=False, device="cpu", patience=0, hidden=[16])
    mlp.fit(tr.images[:200], tr.labels[:200], tr.images[200:260], tr.labels[200:260], classes=digits.classes)
    with pytest.raises(ConfigError, match="no Conv2d"):
        Explainer(mlp).explain(tr.images[:1], "gradcam")
    assert Explainer(mlp).explain(tr.images[:2], "ig").attributions.shape == (2, 2, 8, 8)


@needs_captum
def test_explain_reads_a_saved_model_and_image_files(cnn, digits, tmp_path):
    from PIL import Image

    folder = cnn.save(tmp_path / "cnn")
    files = []
    for i, im in enumerate(digits.splits["test"].images[:2]):
        f = tmp_path / f"{i}.png"
        Image.fromarray((255 - im * 255).astype(np.uint8)).resize((80, 80)).save(f)
        files.append(f)
    from glyphlab.api import explain

    e = explain(folder, files, method="ig")
    assert e.images.shape == (2, 8, 8) and e.attributions.shape == (2, 2, 8, 8)
    png = e.to_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rgb = overlay_rgb(e.images[0], e.contrast[0])
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8


@needs_captum
def test_rot_cnn_is_explained_through_its_exported_plain_torch_network(digits):
    pytest.importorskip("e2cnn", reason="rot-cnn needs pip install 'glyphlab[rot]'")
    tr = digits.splits["train"]
    model = create_model(
        "rot-cnn", epochs=1, widths=[2, 2, 2], hidden=8, N=4, augment=False, progress=False, device="cpu"
    )
    model.fit(tr.images[:200], tr.labels[:200], tr.images[200:260], tr.labels[200:260], classes=digits.classes)
    ex = Explainer(model)
    for method in ("ig", "gradcam"):
        e = ex.explain(tr.images[:2], method)
        assert e.attributions.shape == (2, 2, 8, 8) and np.abs(e.attributions).max() > 0
    net = ex._network()
    assert not [m for m in net.modules() if type(m).__module__.startswith("e2cnn")]  # plain torch only


def test_without_captum_networks_fall_back_to_numpy_occlusion(digits, monkeypatch):
    """Captum is an extra: without it a network is still explained (occlusion), and ig says what to install."""
    import sys

    tr = digits.splits["train"]
    mlp = create_model("mlp", epochs=1, progress=False, device="cpu", patience=0, hidden=[16])
    mlp.fit(tr.images[:200], tr.labels[:200], tr.images[200:260], tr.labels[200:260], classes=digits.classes)
    monkeypatch.setitem(sys.modules, "captum", None)  # `import captum` now raises ImportError
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    assert not has_captum()
    e = Explainer(mlp).explain(tr.images[:2])
    assert e.method == "occlusion" and "numpy" in e.note and e.attributions.shape == (2, 2, 8, 8)
    with pytest.raises(ConfigError, match=r"glyphlab\[explain\]"):
        Explainer(mlp).explain(tr.images[:1], "ig")
