"""Small real models trained on scikit-learn's digits (8x8) for the serving tests, saved once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import drawn_one, png_bytes, train_model


@pytest.fixture()
def one_png() -> bytes:
    return png_bytes(drawn_one())


@pytest.fixture(scope="session")
def logreg_dir(digits, tmp_path_factory) -> Path:
    """A saved logreg with its ONNX export beside it (so the predictor uses ONNX Runtime)."""
    from glyphlab.serving.onnx_export import export_onnx

    d = train_model("logreg", digits).save(tmp_path_factory.mktemp("serve") / "logreg")
    export_onnx(d)
    return d


@pytest.fixture(scope="session")
def cnn_dir(digits, tmp_path_factory) -> Path:
    """A saved cnn-small (one epoch; accuracy does not matter here), without ONNX export."""
    model = train_model("cnn-small", digits, epochs=1, progress=False, device="cpu", patience=0)
    return model.save(tmp_path_factory.mktemp("serve") / "cnn-small")


@pytest.fixture(scope="session")
def cnn_onnx_dir(cnn_dir, tmp_path_factory) -> Path:
    """A copy of the cnn-small folder with model.onnx exported beside its manifest."""
    import shutil

    from glyphlab.serving.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("serve") / "cnn-small-onnx"
    shutil.copytree(cnn_dir, d)
    export_onnx(d)
    return d
