import matplotlib

matplotlib.use("Agg")

import pytest

from glyphlab.data import load_dataset


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's embedded digits: real handwriting, no download, 1,797 images."""
    return load_dataset("digits")
