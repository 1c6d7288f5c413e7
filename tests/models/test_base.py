"""check_images, the one validation at the model boundary: [0, 1] floats in, strided views copied."""

from __future__ import annotations

import numpy as np
import pytest

from glyphlab.errors import ConfigError, GlyphlabError
from glyphlab.models.base import check_images
from glyphlab.models.registry import create_model


def test_uint8_and_out_of_range_images_are_refused(digits):
    tr = digits["train"]
    as_bytes = np.round(tr.images * 255).astype(np.uint8)
    svm = create_model("svm")
    with pytest.raises(ConfigError, match=r"uint8 with values up to 255.*divide by 255 first"):
        svm.fit(as_bytes, tr.labels)
    with pytest.raises(ConfigError, match=r"values in \[0, 255\].*divide by 255 first"):
        svm.fit(as_bytes.astype(np.float32), tr.labels)
    svm.fit(tr.images[:300], tr.labels[:300])
    with pytest.raises(ConfigError, match="divide by 255"):
        svm.predict(np.round(digits["test"].images * 255).astype(np.uint8))
    with pytest.raises(ConfigError, match=r"values in \[-0.5, 1\]"):
        svm.predict_proba(digits["test"].images - 0.5 * (digits["test"].images < 0.5))
    with pytest.raises(ConfigError, match="NaN"):
        check_images(np.full((1, 8, 8), np.nan))
    # 0/1 integer masks and tiny rounding overshoots are fine
    assert check_images(np.ones((2, 8, 8), np.uint8)).dtype == np.float32
    assert check_images(np.full((1, 4, 4), 1 + 1e-6)).max() == 1.0


@pytest.mark.parametrize(
    "name, params", [("logreg", {}), ("cnn-small", {"epochs": 1, "progress": False, "device": "cpu", "patience": 0})]
)
def test_negative_stride_arrays_work_and_match_a_contiguous_copy(digits, name, params):
    tr, te = digits["train"], digits["test"]
    model = create_model(name, **params)
    if model.uses_validation:
        model.fit(tr.images[:300][::-1], tr.labels[:300][::-1], tr.images[300:400], tr.labels[300:400])
    else:
        model.fit(tr.images[:300][::-1], tr.labels[:300][::-1])
    flipped = te.images[::-1]  # negative strides (torch.from_numpy refuses them)
    assert flipped.strides[0] < 0
    np.testing.assert_array_equal(model.predict_proba(flipped), model.predict_proba(flipped.copy()))
    sliced = te.images[:, ::2, ::2]  # non-contiguous rows and columns
    with pytest.raises(GlyphlabError, match="trained on"):  # the shape is wrong, but the error is ours, not a crash
        model.predict_proba(sliced)
