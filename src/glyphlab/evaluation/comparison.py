"""Many runs side by side, computed from their folders: what ``glyphlab compare`` and ``glyphlab runs`` show.

A comparison reads run folders only (config.json, dataset.json, test_images.npz and each model's metrics.json
and predictions.npz): nothing is retrained or even loaded. Models are *grouped by test set* — the SHA-256 of the
test labels and images — because a score on another test set is another question: runs are ranked only within
their group, and McNemar's paired test is computed only between models of one group.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.errors import GlyphlabError
from glyphlab.evaluation.significance import McNemar, bootstrap_interval, mcnemar, wilson_interval
from glyphlab.runfolder import CONFIG, METRICS, PREDICTIONS, TEST_IMAGES, ModelFolder, RunFolder, as_number

#: every pair is tested up to this many models in a group; beyond it, each model against the group's best
ALL_PAIRS_UP_TO = 12


@dataclass
class ComparedModel:
    """One model of one run, with what a comparison needs of it."""

    run: str  # the run folder's path as given
    label: str
    registry_model: str
    dataset: str
    variants: str
    params: dict[str, Any]
    accuracy: float
    accuracy_ci: tuple[float, float]
    f1_macro: float
    f1_macro_ci: tuple[float, float]
    train_seconds: float
    n_test: int
    test_set: str  # short fingerprint of the test set
    correct: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        return f"{Path(self.run).name}/{self.label}"


@dataclass
class Pair:
    a: str
    b: str
    test: McNemar


@dataclass
class Group:
    """Models scored on one test set, best first, with their paired tests."""

    test_set: str
    dataset: str
    n_test: int
    models: list[ComparedModel]
    pairs: list[Pair]


@dataclass
class Comparison:
    groups: list[Group]
    #: per registry model, the parameter names whose values differ between its compared instances
    varying_params: dict[str, list[str]]
    #: the written compare.html, when the comparison was asked to write one
    page: Path | None = None

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per model (for a table, a CSV or a DataFrame), grouped and ranked."""
        out = []
        for g in self.groups:
            for rank, m in enumerate(g.models, 1):
                out.append(
                    {
                        "test_set": g.test_set,
                        "rank": rank,
                        "run": Path(m.run).name,
                        "model": m.label,
                        "registry_model": m.registry_model,
                        "dataset": m.dataset,
                        "variants": m.variants,
                        "params": differing_params(m, self.varying_params),
                        "accuracy": m.accuracy,
                        "accuracy_low": m.accuracy_ci[0],
                        "accuracy_high": m.accuracy_ci[1],
                        "f1_macro": m.f1_macro,
                        "f1_macro_low": m.f1_macro_ci[0],
                        "f1_macro_high": m.f1_macro_ci[1],
                        "train_seconds": m.train_seconds,
                        "n_test": m.n_test,
                    }
                )
        return out


def differing_params(m: ComparedModel, varying: dict[str, list[str]]) -> str:
    """``k=v`` for the parameters in which this model differs from another compared run of the same model."""
    return ", ".join(f"{k}={m.params[k]}" for k in varying.get(m.registry_model, []) if k in m.params)


def find_runs(paths: list[Path]) -> list[RunFolder]:
    """Run folders among ``paths``: each path is a run folder (it has config.json) or a folder of them."""
    runs: list[RunFolder] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise GlyphlabError(f"{p} does not exist: give run folders or a folder that holds them")
        if (p / CONFIG).is_file():
            runs.append(RunFolder(p))
            continue
        found = sorted(c for c in p.iterdir() if c.is_dir() and (c / CONFIG).is_file()) if p.is_dir() else []
        if not found:
            raise GlyphlabError(f"{p} is neither a run folder (no {CONFIG}) nor a folder of run folders")
        runs.extend(RunFolder(c) for c in found)
    return runs


def test_set_fingerprint(run: RunFolder, y_true: np.ndarray) -> str:
    """12 hex digits of SHA-256 over the test labels and, where saved, the test images: two runs share a group
    only when they were scored on the same images in the same order."""
    h = hashlib.sha256(np.ascontiguousarray(y_true, dtype=np.int64).tobytes())
    if run.file(TEST_IMAGES).is_file():
        h.update(np.ascontiguousarray(run.read_test_images_raw()[0]).tobytes())
    return h.hexdigest()[:12]


def finished_models(run: RunFolder) -> list[ModelFolder]:
    """The run's finished (committed: done.json) model folders that hold metrics and predictions. A model killed
    half-way is left out."""
    return [
        m for m in run.model_folders() if m.file(METRICS).is_file() and m.file(PREDICTIONS).is_file() and m.finished
    ]


def load_models(run: RunFolder, seed: int = 0) -> list[ComparedModel]:
    config = run.config
    out = []
    fingerprint: str | None = None
    for folder in finished_models(run):
        metrics = folder.read_metrics()
        pred = folder.read_predictions()
        y_true, y_pred = pred["y_true"], pred["y_pred"]
        n_classes = int(pred["proba"].shape[1])
        fingerprint = fingerprint or test_set_fingerprint(run, y_true)
        correct = y_true == y_pred
        out.append(
            ComparedModel(
                run=str(run.path),
                label=folder.name,
                registry_model=str(metrics.get("registry_model", folder.name)),
                dataset=str(config.get("dataset", "?")),
                variants=str(config.get("variants", "") or ""),
                params=dict(metrics.get("params", {})),
                accuracy=float(correct.mean()),
                accuracy_ci=wilson_interval(int(correct.sum()), len(correct)),
                f1_macro=float(metrics.get("f1_macro", float("nan"))),
                f1_macro_ci=bootstrap_interval(y_true, y_pred, n_classes, seed=seed),
                train_seconds=float(metrics.get("train_seconds", float("nan"))),
                n_test=len(correct),
                test_set=fingerprint,
                correct=correct,
            )
        )
    return out


def _varying(models: list[ComparedModel]) -> dict[str, list[str]]:
    by_model: dict[str, list[ComparedModel]] = {}
    for m in models:
        by_model.setdefault(m.registry_model, []).append(m)
    out: dict[str, list[str]] = {}
    for name, group in by_model.items():
        keys = sorted({k for m in group for k in m.params})
        out[name] = [
            k for k in keys if len({json.dumps(m.params.get(k), sort_keys=True, default=str) for m in group}) > 1
        ]
    return out


def compare_runs(paths: list[Path], seed: int = 0) -> Comparison:
    """Compare every finished model of the given runs (or folders of runs)."""
    models = [m for run in find_runs(paths) for m in load_models(run, seed=seed)]
    if not models:
        raise GlyphlabError("no finished model in the given runs: nothing to compare")
    groups: dict[str, list[ComparedModel]] = {}
    for m in models:
        groups.setdefault(m.test_set, []).append(m)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        members.sort(key=lambda m: (-m.accuracy, m.train_seconds))
        if len(members) <= ALL_PAIRS_UP_TO:
            pairs = combinations(members, 2)
        else:
            pairs = ((members[0], m) for m in members[1:])
        tested = [Pair(a.name, b.name, mcnemar(a.correct, b.correct)) for a, b in pairs]
        datasets = sorted({m.dataset + (f" +{m.variants}" if m.variants else "") for m in members})
        out.append(Group(key, ", ".join(datasets), members[0].n_test, members, tested))
    return Comparison(out, _varying(models))


# ----------------------------------------------------------------------------- glyphlab runs


@dataclass
class RunSummary:
    path: Path
    created: str
    dataset: str
    variants: str
    models: int
    finished: int
    best: str | None
    best_accuracy: float | None


def summarize_run(run: RunFolder) -> RunSummary:
    config = run.config
    best, best_acc = None, None
    done = finished_models(run)
    for folder in done:
        acc = as_number(folder.read_metrics().get("accuracy"))
        if acc is not None and (best_acc is None or acc > best_acc):
            best, best_acc = folder.name, acc
    created = str(config.get("created", ""))
    if not created:
        created = datetime.fromtimestamp(run.file(CONFIG).stat().st_mtime).isoformat(timespec="seconds")
    return RunSummary(
        run.path,
        created,
        str(config.get("dataset", "?")),
        str(config.get("variants", "") or ""),
        len(config.get("models", [])),
        len(done),
        best,
        best_acc,
    )


def list_runs(folder: Path) -> list[RunSummary]:
    """Every run folder directly under ``folder``, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GlyphlabError(f"{folder} is not a folder: give the folder that holds your runs (default: runs)")
    found = [RunFolder(c) for c in folder.iterdir() if c.is_dir() and (c / CONFIG).is_file()]
    return sorted((summarize_run(r) for r in found), key=lambda s: s.created, reverse=True)
