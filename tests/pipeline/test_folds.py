"""The one k-fold driver under the search's CV accuracy and the audit's out-of-fold probabilities."""

import numpy as np
import pytest

from glyphlab.data.registry import load_dataset
from glyphlab.errors import ConfigError
from glyphlab.pipeline.audit import out_of_fold_proba
from glyphlab.pipeline.folds import FoldJob, over_folds
from glyphlab.pipeline.search import cv_score


def _held_and_accuracy(model, images, labels, held):
    return held, float(model.score(images, labels))


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits", limit=300)
    return ds["train"].images, ds["train"].labels, ds.classes


def test_the_held_out_parts_partition_the_images_and_both_measures_read_the_same_folds(digits):
    x, y, classes = digits
    job = FoldJob("logreg", {}, x, y, 3, 0, classes, n_jobs=1)
    results = list(over_folds(job, _held_and_accuracy))
    held = np.concatenate([h for h, _ in results])
    assert len(results) == 3 and np.array_equal(np.sort(held), np.arange(len(y)))
    _, _, scores = cv_score(job)
    assert scores == [acc for _, acc in results]
    proba = out_of_fold_proba(job)
    for h, acc in results:  # each fold's out-of-fold rows are that fold's model's answers
        assert float((proba[h].argmax(axis=1) == y[h]).mean()) == pytest.approx(acc)


def test_an_unknown_model_is_one_clear_error_before_any_fold(digits):
    x, y, classes = digits
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        list(over_folds(FoldJob("nope", {}, x, y, 3, 0, classes), _held_and_accuracy))
