"""The label audit finds labels planted wrong in the embedded digits, writes its folder, and --exclude uses it."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from glyphlab.data.dataset import Split
from glyphlab.errors import DataError
from glyphlab.pipeline.audit import (
    AuditConfig,
    audit_dataset,
    exclude_issues,
    out_of_fold_proba,
    rank_label_issues,
    read_issues,
)
from glyphlab.pipeline.folds import FoldJob


def _flip(ds, n, seed=0):
    """``ds`` with ``n`` training labels moved to another class; returns (dataset, flipped indices)."""
    rng = np.random.default_rng(seed)
    labels = ds["train"].labels.copy()
    idx = np.sort(rng.choice(len(labels), size=n, replace=False))
    labels[idx] = (labels[idx] + rng.integers(1, len(ds.classes), size=n)) % len(ds.classes)
    return ds.with_splits({**ds.splits, "train": Split(ds["train"].images, labels)}), idx


@pytest.fixture(scope="module")
def planted(digits, tmp_path_factory):
    ds, flipped = _flip(digits, 30)
    out = tmp_path_factory.mktemp("audit")
    cfg = AuditConfig(dataset="digits", model="logreg", folds=3, splits=["train"])
    return ds, flipped, audit_dataset(ds, cfg, out, n_jobs=1), out


def test_audit_finds_planted_flips(planted, digits):
    ds, flipped, result, _ = planted
    top = {result.keys[i][1] for i in result.order[: 2 * len(flipped)]}
    recall = len(top & set(flipped.tolist())) / len(flipped)
    assert recall >= 0.8, recall
    found = [r for r in result.issues if r["index"] in set(flipped.tolist())]
    assert len(found) >= 0.7 * len(flipped)
    # a found flip's suggested label is, nearly always, the label it had before the flip
    original = digits["train"].labels
    restored = sum(r["suggested_label"] == digits.classes[original[r["index"]]] for r in found)
    assert restored >= 0.9 * len(found)


def test_audit_folder(planted):
    ds, flipped, result, out = planted
    rows = list(csv.DictReader(open(out / "label_issues.csv")))
    assert rows and list(rows[0]) == ["split", "index", "given_label", "suggested_label", "score"]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)
    assert all(r["given_label"] != r["suggested_label"] or float(r["score"]) < 0.5 for r in rows)
    summary = json.loads((out / "audit.json").read_text())
    assert summary["n_audited"] == len(ds["train"]) and summary["n_issues"] == len(rows)
    assert 0.85 < summary["oof_accuracy"] < 1.0
    with Image.open(out / "label_issues.png") as im:
        assert im.size[0] > 600 and im.size[1] > 150
    assert read_issues(out / "label_issues.csv") == [(r["split"], int(r["index"])) for r in rows]


def test_oof_does_not_depend_on_workers(digits):
    x, y = digits["train"].images[:300], digits["train"].labels[:300]
    a = out_of_fold_proba(FoldJob("logreg", {}, x, y, 3, 0, digits.classes, n_jobs=1))
    b = out_of_fold_proba(FoldJob("logreg", {}, x, y, 3, 0, digits.classes, n_jobs=2))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.allclose(a.sum(axis=1), 1.0, atol=1e-4)


def test_rank_puts_a_contradicted_label_first():
    labels = np.array([0] * 20 + [1] * 20)
    proba = np.where(np.arange(2)[None, :] == labels[:, None], 0.95, 0.05)
    labels[3] = 1  # the model is sure it is a 0
    flagged, score, order = rank_label_issues(labels, proba)
    assert order[0] == 3 and flagged[3] and flagged.sum() == 1


def test_exclude_drops_only_training_rows(planted):
    ds, _, result, out = planted
    clean, dropped = exclude_issues(ds, out / "label_issues.csv")
    assert dropped == len(result.issues) and len(clean["train"]) == len(ds["train"]) - dropped
    assert len(clean["test"]) == len(ds["test"])


def test_exclude_refuses_a_foreign_or_broken_csv(planted, tmp_path):
    ds, _, _, out = planted
    bad = tmp_path / "label_issues.csv"
    bad.write_text("split,index\ntrain,99999\n")
    with pytest.raises(DataError, match="has 1,3"):
        exclude_issues(ds, bad)
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no 'split' and 'index'"):
        exclude_issues(ds, bad)
    with pytest.raises(DataError, match="no such file"):
        exclude_issues(ds, tmp_path / "missing.csv")
