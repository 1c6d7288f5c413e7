"""The report shows each model's calibration (ECE, reliability diagram) and the run's label audit."""

import json
import re
import shutil

from glyphlab.pipeline.audit import AuditConfig, run_audit
from glyphlab.reporting.html import build_report


def test_report_shows_calibration_and_audit(report_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(report_run, run_dir)
    audit = run_audit(AuditConfig(dataset="digits", model="logreg", folds=3), run_dir / "audit")
    page = build_report(run_dir).read_text()
    assert page.count("<h3>Calibration</h3>") == 2
    assert len(re.findall(r'alt="[^"]+ reliability diagram"', page)) == 2
    assert re.search(r"ECE <b>0\.\d{4}</b>", page)
    section = page[page.index('id="label-audit"') :]
    assert f"label issues <b>{len(audit.issues):,}</b>" in section
    assert 'alt="top label-issue suspects"' in section and 'href="#label-audit"' in page
    first = audit.issues[0]
    assert f'<td class="num">{first["index"]}</td><td>{first["given_label"]}</td>' in section


def test_report_without_audit_or_calibration_has_neither(report_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(report_run, run_dir)
    for metrics in (run_dir / "models").glob("*/metrics.json"):  # a run made before calibration was measured
        raw = json.loads(metrics.read_text())
        for key in ("ece", "mce", "nll", "brier", "mean_confidence", "calibration_bins"):
            raw.pop(key)
        metrics.write_text(json.dumps(raw))
    page = build_report(run_dir).read_text()
    assert "<h3>Calibration</h3>" not in page and 'id="label-audit"' not in page
