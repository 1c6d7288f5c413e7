"""What a finished (or interrupted) search leaves in its folder: ``trials.csv``, ``optimization_history.png``
and ``param_importance.png`` (fANOVA, when at least two parameters vary over enough trials)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from glyphlab.events import Note, Wrote, emit
from glyphlab.fileio import write_csv
from glyphlab.pipeline.search.space import decode_params

IMPORTANCE_MIN_TRIALS = 5


def trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    names = sorted({n for t in study.get_trials(deepcopy=False) for n in t.params})
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        params = decode_params(t.params)
        worker = t.user_attrs.get("worker") or {}
        row = {
            "number": t.number,
            "params": json.dumps(params, sort_keys=True),
            "mean": t.user_attrs.get("mean", t.value),
            "std": t.user_attrs.get("std"),
            "seconds": t.user_attrs.get("seconds"),
            "state": t.state.name,
        }
        row.update(
            {
                f"param_{n}": json.dumps(params[n]) if isinstance(params.get(n), (list, dict)) else params.get(n)
                for n in names
            }
        )
        row["worker"] = f"{worker.get('host', '')}:{worker.get('pid', '')}" if worker else ""
        row["note"] = t.user_attrs.get("error") or t.user_attrs.get("note") or ""
        rows.append({k: ("" if v is None else v) for k, v in row.items()})
    return rows


def write_outputs(study, out: Path) -> dict[str, Path]:
    rows = trial_rows(study)
    paths = {"trials": out / "trials.csv"}
    write_csv(paths["trials"], rows)
    paths["history"] = plot_history(study, out / "optimization_history.png")
    imp = plot_importance(study, out / "param_importance.png")
    if isinstance(imp, str):
        emit(Note(f"parameter importance skipped: {imp}", "dim"))
        (out / "param_importance.txt").write_text(f"skipped: {imp}\n")
    else:
        paths["importance"] = imp
    emit(Wrote(tuple(paths.values())))
    return paths


def _plt():
    import matplotlib  # local: pyplot is slow to import and only the end of a search draws

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_history(study, path: Path) -> Path:
    plt = _plt()
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    fig, ax = plt.subplots(figsize=(7, 4))
    if done:
        x = [t.number for t in done]
        y = [t.value for t in done]
        ax.plot(x, y, "o", ms=4, alpha=0.7, label="trial")
        ax.plot(x, np.maximum.accumulate(y), "-", color="tab:red", label="best so far")
        ax.legend(loc="lower right")
    ax.set_xlabel("trial")
    ax.set_ylabel(study.user_attrs.get("score", "score"))
    ax.set_title(f"optimisation history — {study.study_name}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_importance(study, path: Path) -> Path | str:
    """fANOVA importance via ``optuna.importance``; a reason string when it cannot be computed."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = {n for t in done for n in t.params}
    varying = [n for n in names if len({repr(t.params.get(n)) for t in done}) > 1]
    if len(varying) < 2:
        return f"needs at least 2 searched parameters that vary (have {len(varying)})"
    if len(done) < IMPORTANCE_MIN_TRIALS:
        return f"needs at least {IMPORTANCE_MIN_TRIALS} complete trials (have {len(done)})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study, params=sorted(varying))
    except Exception as exc:  # e.g. a degenerate study where every value is equal
        return f"optuna.importance failed: {exc}"
    (path.with_suffix(".json")).write_text(json.dumps(imp, indent=2))
    plt = _plt()
    items = sorted(imp.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(items) + 1.5))
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, normalised)")
    ax.set_title("hyper-parameter importance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
