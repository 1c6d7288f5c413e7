"""One small real run (digits, logreg + random forest) shared by the report tests, built with glyphlab's own API."""

from __future__ import annotations

from pathlib import Path

import pytest

from glyphlab.pipeline.run import RunConfig, run

REPORT_MODELS = ["logreg", "random-forest"]


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    cfg = RunConfig(dataset="digits", models=REPORT_MODELS, seed=0, params={"random-forest": {"n_estimators": 40}})
    run(cfg, out, report=False)
    return out


@pytest.fixture(scope="session")
def built_report(report_run: Path) -> Path:
    from glyphlab.reporting.html import build_report

    return build_report(report_run)
