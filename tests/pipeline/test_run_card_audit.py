"""A run writes calibration (ECE, reliability diagram) and a full model card; --exclude trains on the audit's clean subset."""

import json

import pytest
from PIL import Image

from glyphlab.errors import DataError
from glyphlab.models.model_card import SECTIONS
from glyphlab.models.persistence import load_model
from glyphlab.pipeline.audit import AuditConfig, run_audit
from glyphlab.pipeline.run import RunConfig, run


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("rca")
    audit = run_audit(AuditConfig(dataset="digits", model="logreg", folds=3, splits=["train"]), base / "audit")
    out = base / "run"
    run(RunConfig(models=["logreg"], exclude=str(base / "audit" / "label_issues.csv")), out, report=False)
    return audit, out


def test_run_records_calibration(audited_run):
    _, out = audited_run
    d = out / "models" / "logreg"
    metrics = json.loads((d / "metrics.json").read_text())
    assert 0.0 <= metrics["ece"] < 0.2 and metrics["nll"] > 0
    lo, hi = metrics["accuracy_ci95"]
    assert lo < metrics["accuracy"] < hi
    with Image.open(d / "reliability.png") as im:
        assert im.size[0] > 300


def test_run_model_card(audited_run):
    audit, out = audited_run
    model_dir = out / "models" / "logreg" / "model"
    text = (model_dir / "MODEL_CARD.md").read_text()
    assert [line[3:] for line in text.splitlines() if line.startswith("## ")] == list(SECTIONS)
    metrics = json.loads((out / "models" / "logreg" / "metrics.json").read_text())
    assert f"{metrics['accuracy']:.4f}" in text and "(Wilson)" in text and "bootstrap" in text
    assert f"**{metrics['ece']:.4f}**" in text
    assert f"{len(audit.issues)} training images left out as label issues" in text
    assert "| true | predicted as |" in text or "No confusions" in text
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert "MODEL_CARD.md" in manifest["files"]
    load_model(model_dir)


def test_exclude_drops_the_flagged_training_images(audited_run):
    audit, out = audited_run
    summary = json.loads((out / "dataset.json").read_text())
    n_train_issues = sum(1 for r in audit.issues if r["split"] == "train")
    assert n_train_issues > 0
    assert summary["split_sizes"]["train"] + summary["split_sizes"]["val"] == 1347 - n_train_issues
    assert summary["split_sizes"]["test"] == 450
    assert (out / "audit" / "label_issues.csv").is_file() and (out / "audit" / "audit.json").is_file()


def test_exclude_refuses_an_audit_of_another_dataset(audited_run, tmp_path):
    audit, _ = audited_run
    summary = json.loads((audit.out / "audit.json").read_text())
    summary["classes"] = list("abcdefghij")
    (tmp_path / "audit.json").write_text(json.dumps(summary))
    (tmp_path / "label_issues.csv").write_text((audit.out / "label_issues.csv").read_text())
    with pytest.raises(DataError, match="audit this dataset first"):
        run(RunConfig(models=["logreg"], exclude=str(tmp_path / "label_issues.csv")), tmp_path / "run", report=False)
