import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

from glyphlab.data import load_dataset

REPO = Path(__file__).resolve().parents[1]


def _find_real_mnist() -> Path | None:
    """The folder holding the real MNIST IDX files: $GLYPHLAB_MNIST_DIR, else ../shared/data beside the repo."""
    env = os.environ.get("GLYPHLAB_MNIST_DIR")
    for base in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        for folder in (base, base / "mnist"):
            if (folder / "train-images-idx3-ubyte.gz").is_file() or (folder / "train-images-idx3-ubyte").is_file():
                return folder
    return None


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's embedded digits: real handwriting, no download, 1,797 images."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    """The read-only folder of real MNIST files; tests that need it are skipped where it is absent."""
    root = _find_real_mnist()
    if root is None:
        pytest.skip("real MNIST not found (set GLYPHLAB_MNIST_DIR or put it in ../shared/data)")
    return root


@pytest.fixture
def mnist_data_dir(tmp_path, real_mnist_dir) -> Path:
    """A writable data folder whose mnist/ links to the real MNIST files, so generated files stay in tmp."""
    (tmp_path / "mnist").symlink_to(real_mnist_dir, target_is_directory=True)
    return tmp_path


@pytest.fixture
def core_install(monkeypatch):
    """As on ``pip install glyphlab`` without extras: importing e2cnn and timm fails, and the model registry is
    rebuilt without the families that need them (rot-cnn, efficientnet-b0): the next use of either imports its
    family again, which fails as without its extra; all is restored afterwards."""
    import sys

    from glyphlab.models import registry

    registry.load_builtin_models()
    for dep in ("e2cnn", "timm"):
        monkeypatch.setitem(sys.modules, dep, None)  # `import e2cnn` now raises ModuleNotFoundError
    for module in ("glyphlab.models.rotcnn", "glyphlab.models.efficientnet"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    for name in registry.OPTIONAL_MODELS:
        monkeypatch.delitem(registry.MODELS, name, raising=False)
    return registry
