"""The report's parts that say how far a run can be trusted: each model's calibration and the label audit.

Read from the run folder's files alone, like the rest of the report: ``models/NAME/metrics.json`` and
``reliability.png`` (written by every evaluation), the temperature in the saved model's manifest, and
``RUN/audit/`` (``glyphlab run --exclude`` copies the audit there; ``glyphlab audit --out RUN/audit`` too).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glyphlab.runfolder import AUDIT_DIR, CONFIG, MANIFEST, RELIABILITY_PNG, ModelFolder, read_csv_rows

AUDIT_ROWS_SHOWN = 12


def _json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def calibration_part(model_dir: Path, file_uri: Callable[[Path], str | None]) -> dict[str, Any] | None:
    """ECE and friends for one model's section, or None for a run made before calibration was measured."""
    folder = ModelFolder(model_dir)
    metrics = folder.read_metrics()
    if "ece" not in metrics:
        return None
    temperature = (_json(folder.model_path / MANIFEST).get("extra") or {}).get("temperature")
    conf, acc = float(metrics.get("mean_confidence", 0.0)), float(metrics.get("accuracy", 0.0))
    return {
        "ece": f"{float(metrics['ece']):.4f}",
        "mce": f"{float(metrics.get('mce', 0.0)):.4f}",
        "nll": f"{float(metrics.get('nll', 0.0)):.4f}",
        "brier": f"{float(metrics.get('brier', 0.0)):.4f}",
        "mean_confidence": f"{conf:.4f}",
        "accuracy": f"{acc:.4f}",
        "direction": "over-confident" if conf > acc else "under-confident",
        "bins": int(metrics.get("calibration_bins", 15)),
        "temperature": f"{float(temperature):.4f}" if temperature not in (None, 1.0) else None,
        "reliability": file_uri(folder.file(RELIABILITY_PNG)),
    }


def audit_part(run_dir: Path, file_uri: Callable[[Path], str | None]) -> dict[str, Any] | None:
    """The label-audit section: what was audited, how many issues, the top suspects (table and picture)."""
    folder = run_dir / AUDIT_DIR
    summary = _json(folder / "audit.json")
    if not summary and not (folder / "label_issues.csv").is_file():
        return None
    rows = read_csv_rows(folder / "label_issues.csv")
    cfg = summary.get("config") or {}
    config = _json(run_dir / CONFIG)
    return {
        "dataset": summary.get("dataset", cfg.get("dataset", "?")),
        "model": cfg.get("model", "?"),
        "folds": cfg.get("folds", "?"),
        "n_audited": f"{int(summary.get('n_audited', 0)):,}",
        "n_issues": f"{len(rows):,}",
        "rate": f"{100 * float(summary.get('issue_rate', 0.0)):.2f}",
        "oof_accuracy": f"{float(summary.get('oof_accuracy', 0.0)):.4f}",
        "seconds": f"{float(summary.get('seconds', 0.0)):.1f}",
        "by_split": ", ".join(f"{k} {v:,}" for k, v in (summary.get("issues_by_split") or {}).items()),
        "excluded": bool(config.get("exclude")),
        "rows": [
            {k: r.get(k, "") for k in ("split", "index", "given_label", "suggested_label", "score")}
            for r in rows[:AUDIT_ROWS_SHOWN]
        ],
        "picture": file_uri(folder / "label_issues.png"),
    }
