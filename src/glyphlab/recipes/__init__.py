"""Recipes: a whole seed study as a plain TOML file a user can copy and edit.

A recipe names a dataset (with variants and options), the models (``label = {model, params}``), the
report's own figures under ``[reference]`` so the leaderboard sets glyphlab's numbers beside them, and a
``[quick]`` section of overrides that shrink it to a few hundred images for CI. ``glyphlab recipe NAME``
runs the shipped file of that name; ``glyphlab recipe path/to/file.toml`` runs any other.

Two optional steps run before the models are trained, each into its own sub-folder of the run:

* ``[pretrain]``: a dataset and models trained first (``RUN/pretrain/``); a model's
  ``init_from = "pretrain:LABEL"`` starts from that network (transfer learning in one command).
* ``cv = K`` on a classical model's entry: its K-fold cross-validation accuracy on train+val (stratified,
  the recipe's seed), written to ``RUN/models/LABEL/cv.json`` and set beside the report's ``cv_accuracy``.
* ``search = {space, trials, sampler, cv}`` on a model entry: a hyper-parameter search (``glyphlab search``,
  cross-validated on train+val for classical models) into ``RUN/search/LABEL/``; the model is then trained
  with the best parameters found, the entry's own ``params`` filling in the rest.

An ``ensemble`` entry may name models trained earlier in the same recipe: ``members = ["model:cnn-deep",
"model:transfer"]`` averages those saved models (``RUN/models/LABEL/model``) without training them again.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from glyphlab.errors import ConfigError
from glyphlab.events import Note, Observer, Table, Wrote, emit, observing
from glyphlab.fileio import write_csv, write_json
from glyphlab.runfolder import CV, RECIPE, REFERENCE_COMPARISON, RunFolder


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSection(_Strict):
    name: str
    variants: str = ""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    options: dict[str, Any] = {}


class SearchSection(_Strict):
    space: str
    trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    cv: int | None = Field(None, ge=2)

    @field_validator("space")
    @classmethod
    def _space_exists(cls, space: str) -> str:
        from glyphlab.pipeline.search import find_space

        try:
            find_space(space)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return space


class ModelEntry(_Strict):
    model: str
    params: dict[str, Any] = {}
    search: SearchSection | None = None
    #: k-fold cross-validation accuracy on train+val besides the test score (a report's cross_val_score)
    cv: int | None = Field(None, ge=2)


class QuickSection(_Strict):
    dataset_options: dict[str, Any] = {}
    variants: str | None = None
    #: applied to every model that takes the parameter (e.g. epochs = 1)
    params: dict[str, Any] = {}
    #: per-model overrides, by label
    models: dict[str, dict[str, Any]] = {}
    #: a model entry's search runs at most this many trials
    search_trials: int = Field(2, ge=1)


class PretrainSection(_Strict):
    dataset: DatasetSection
    models: dict[str, ModelEntry]

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
        return _check_models(models)


class Recipe(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    dataset: DatasetSection
    models: dict[str, ModelEntry]
    reference: dict[str, Any] = {}
    quick: QuickSection = QuickSection()
    #: optional extra steps a recipe asks for, e.g. {"submission": "path of the unlabeled split"}
    outputs: dict[str, Any] = {}
    pretrain: PretrainSection | None = None

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
        return _check_models(models)

    def needs_extras(self) -> dict[str, str]:
        """Models of this recipe that the install lacks, each with the extra that brings it (``{}``: runnable)."""
        from glyphlab.models.registry import missing_extra

        entries = [*self.models.values(), *(self.pretrain.models.values() if self.pretrain else [])]
        return {e.model: extra for e in entries if (extra := missing_extra(e.model))}

    @model_validator(mode="after")
    def _pretrain_references(self) -> Recipe:
        sources = set(self.pretrain.models) if self.pretrain else set()
        for label, entry in self.models.items():
            ref = entry.params.get("init_from")
            if isinstance(ref, str) and ref.startswith(PRETRAIN_PREFIX):
                if ref[len(PRETRAIN_PREFIX) :] not in sources:
                    raise ValueError(
                        f"models.{label}.params.init_from: {ref!r} names no model of [pretrain.models]"
                        f" (there: {', '.join(sorted(sources)) or 'no [pretrain] section'})"
                    )
        earlier: list[str] = []
        for label, entry in self.models.items():
            for ref in _members(entry.params):
                if isinstance(ref, str) and ref.startswith(MODEL_PREFIX) and ref[len(MODEL_PREFIX) :] not in earlier:
                    raise ValueError(
                        f"models.{label}.params.members: {ref!r} names no model listed before "
                        f"'{label}' in [models] (before it: {', '.join(earlier) or 'none'})"
                    )
            earlier.append(label)
        return self


PRETRAIN_PREFIX = "pretrain:"
#: an ensemble member that is a model trained earlier in the same recipe run
MODEL_PREFIX = "model:"


def _members(params: dict[str, Any]) -> list[Any]:
    """An ensemble entry's ``members`` as a list (one path may be given as a string); [] for other models."""
    members = params.get("members")
    return [members] if isinstance(members, str) else list(members or [])


def _check_models(models: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
    from glyphlab.models.params import check_params
    from glyphlab.models.registry import MODEL_MODULES, missing_extra, model_spec

    if not models:
        raise ValueError("a recipe needs at least one model")
    for label, entry in models.items():
        if missing_extra(entry.model):  # listed and loadable; running it says which extra to install
            continue
        if entry.model not in MODEL_MODULES:
            raise ValueError(f"{label}: unknown model '{entry.model}' (known: {', '.join(sorted(MODEL_MODULES))})")
        spec = model_spec(entry.model)
        unknown = set(entry.params) - set(spec.cls.defaults)
        if unknown:
            raise ValueError(f"{label}.params: '{entry.model}' has no parameter(s) {', '.join(sorted(unknown))}")
        cls = spec.cls
        try:
            check_params(entry.model, entry.params, cls.defaults, cls.param_specs)
        except ConfigError as exc:
            raise ValueError(f"{label}.params: {exc}") from None
        if entry.cv is not None and spec.family != "classical":
            raise ValueError(
                f"{label}.cv: cross-validation scores are for classical models; '{entry.model}' is a "
                f"{spec.family} model (networks are judged on the validation split)"
            )
    return models


def shipped_recipes() -> dict[str, Path]:
    folder = resources.files("glyphlab.recipes")
    return {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def load_recipe(name_or_path: str | Path) -> Recipe:
    path = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_recipes()
        if str(name_or_path) not in shipped:
            raise ConfigError(
                f"no recipe '{name_or_path}': not a file, and not one of {', '.join(sorted(shipped))} "
                "(`glyphlab recipe --list`)"
            )
        path = shipped[str(name_or_path)]
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"recipe {path.name} is invalid: {problems}") from None


def to_run_config(recipe: Recipe, quick: bool = False, data_dir: str | None = None, pretrain: bool = False):
    """The run (``pretrain=True``: the [pretrain] run) a recipe describes, with the [quick] overrides when asked."""
    from glyphlab.pipeline.run import RunConfig

    if pretrain and recipe.pretrain is None:
        raise ConfigError(f"recipe {recipe.name} has no [pretrain] section")
    dataset, models = (recipe.pretrain.dataset, recipe.pretrain.models) if pretrain else (recipe.dataset, recipe.models)
    params = {label: dict(entry.params) for label, entry in models.items()}
    options = dict(dataset.options)
    variants = dataset.variants
    if quick:
        from glyphlab.models.registry import model_spec

        options.update(recipe.quick.dataset_options)
        if recipe.quick.variants is not None and not pretrain:
            variants = recipe.quick.variants
        for label, entry in models.items():
            takes = model_spec(entry.model).cls.defaults
            params[label].update({k: v for k, v in recipe.quick.params.items() if k in takes})
            params[label].update(recipe.quick.models.get(label, {}))
    return RunConfig(
        dataset=dataset.name,
        models=[f"{label}={entry.model}" for label, entry in models.items()],
        params=params,
        seed=recipe.seed,
        val_fraction=dataset.val_fraction,
        variants=variants,
        data_dir=data_dir,
        dataset_options=options,
    )


def resolve_members(cfg, out: Path) -> None:
    """Point ensemble members named ``model:LABEL`` at the run's own saved models (``out/models/LABEL/model``)."""
    for params in cfg.params.values():
        if "members" in params:
            params["members"] = [
                str(RunFolder(out).model(m[len(MODEL_PREFIX) :]).model_path)
                if isinstance(m, str) and m.startswith(MODEL_PREFIX)
                else m
                for m in _members(params)
            ]


def run_recipe(
    name_or_path: str | Path,
    out: Path | None = None,
    quick: bool = False,
    data_dir: str | None = None,
    report: bool = True,
    track: str | None = None,
    tracking_uri: str | None = None,
    observers: Sequence[Observer] = (),
) -> Path:
    """Run a recipe; ``track``/``tracking_uri`` as for :func:`glyphlab.pipeline.run.run` (the pretraining run and
    the main run are each one tracked run, their models nested in it); ``observers`` get its events."""
    with observing(*observers):
        return _run_recipe(load_recipe(name_or_path), out, quick, data_dir, report, track, tracking_uri)


def _run_recipe(
    recipe: Recipe,
    out: Path | None,
    quick: bool,
    data_dir: str | None,
    report: bool,
    track: str | None,
    tracking_uri: str | None,
) -> Path:
    from glyphlab.pipeline.run import default_run_dir, run

    missing = recipe.needs_extras()
    if missing:
        extras = sorted(set(missing.values()))
        raise ConfigError(
            f"recipe {recipe.name} needs {', '.join(f'glyphlab[{e}]' for e in extras)} (for "
            f"{', '.join(sorted(missing))}), which is not installed: "
            f"pip install 'glyphlab[{','.join(extras)}]'"
        )
    cfg = to_run_config(recipe, quick=quick, data_dir=data_dir)
    from glyphlab.recipes.submission import submission_label, write_submission

    submit = submission_label(recipe.outputs, list(recipe.models))  # a typo fails before any training
    out = Path(out) if out else default_run_dir(cfg).with_name(f"{default_run_dir(cfg).name}-{recipe.name}")
    emit(Note(f"recipe {recipe.name}{' (quick)' if quick else ''}: {recipe.description}"))
    folder = RunFolder.create(out)
    write_json(folder.file(RECIPE), {**recipe.model_dump(), "quick": quick})
    if recipe.pretrain is not None:
        pre = out / "pretrain"
        emit(Note(f"pretraining on {recipe.pretrain.dataset.name} → {pre}"))
        run(
            to_run_config(recipe, quick=quick, data_dir=data_dir, pretrain=True),
            pre,
            report=False,
            track=track,
            tracking_uri=tracking_uri,
        )
        for params in cfg.params.values():
            ref = params.get("init_from")
            if isinstance(ref, str) and ref.startswith(PRETRAIN_PREFIX):
                params["init_from"] = str(RunFolder(pre).model(ref[len(PRETRAIN_PREFIX) :]).model_path)
    resolve_members(cfg, out)
    for label, entry in recipe.models.items():
        if entry.search is not None:
            found = _search_for(recipe, label, entry, cfg, out / "search" / label, quick)
            cfg.params[label] = {**cfg.params[label], **found, **(recipe.quick.models.get(label, {}) if quick else {})}
    run(cfg, out, report=False, track=track, tracking_uri=tracking_uri)
    asks_cv = [label for label, entry in recipe.models.items() if entry.cv is not None]
    ds = None
    if submit or asks_cv:  # loaded once for every CV entry and the submission
        from glyphlab.pipeline.run import load_run_dataset

        ds = load_run_dataset(cfg)
    cv = {label: _cross_validate(label, recipe.models[label], cfg, ds, out) for label in asks_cv}
    if submit:
        emit(Wrote((write_submission(out, submit, ds),), what=f"submission ({submit}, split 'hidden')"))
    if any(isinstance(v, dict) for v in recipe.reference.values()):
        rows = compare_with_reference(folder.leaderboard_rows(), recipe.reference, cv)
        write_csv(folder.file(REFERENCE_COMPARISON), rows)
        for table in comparison_tables(rows, recipe):
            emit(table)
    if report:
        from glyphlab.pipeline.run import build_report_if_available

        build_report_if_available(out)
    return out


def _search_for(recipe: Recipe, label: str, entry: ModelEntry, cfg, out: Path, quick: bool) -> dict[str, Any]:
    """Run the entry's search (no refit: the recipe trains the winner itself) and return the best parameters."""
    from glyphlab.pipeline.search import SearchConfig, run_search

    spec = entry.search
    assert spec is not None
    trials = min(spec.trials, recipe.quick.search_trials) if quick else spec.trials
    emit(Note(f"searching {label}: space {spec.space}, {trials} trial(s), sampler {spec.sampler}"))
    run_search(
        SearchConfig(
            **cfg.data_fields(),
            model=entry.model,
            space=spec.space,
            trials=trials,
            cv=spec.cv,
            sampler=spec.sampler,
            pruner="none",
            out=str(out),
            val_fraction=cfg.val_fraction,
            refit=False,
        ),
    )
    best = out / "best_params.json"
    if not best.is_file():
        raise ConfigError(f"{label}: the search finished no trial (see {out / 'trials.csv'}): nothing to train")
    return dict(json.loads(best.read_text())["searched"])


def _cross_validate(label: str, entry: ModelEntry, cfg, ds, out: Path) -> dict[str, Any]:
    """The entry's k-fold CV accuracy on train+val with the parameters it was trained with (its search's
    winners included), into RUN/models/LABEL/cv.json."""
    import time

    from glyphlab.data.splits import merge_splits
    from glyphlab.pipeline.folds import FoldJob
    from glyphlab.pipeline.search import cv_score, model_params

    k = int(entry.cv or 0)
    pool = merge_splits(ds, ["train", "val"])
    params = model_params(entry.model, cfg.params.get(label, {}), {}, cfg.seed)
    emit(Note(f"cross-validating {label}: {k} folds of {len(pool):,} train+val images"))
    t0 = time.perf_counter()
    mean, std, folds = cv_score(FoldJob(entry.model, params, pool.images, pool.labels, k, cfg.seed, ds.classes))
    result = {
        "k": k,
        "mean": mean,
        "std": std,
        "folds": folds,
        "n_images": len(pool),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(RunFolder(out).model(label).file(CV), result)
    emit(Note(f"  {label}: {k}-fold CV accuracy {mean:.4f} ± {std:.4f} ({result['seconds']:.0f} s)"))
    return result


def compare_with_reference(
    leaderboard: list[dict[str, Any]], reference: dict[str, Any], cv: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One row per model: glyphlab's accuracy and macro F1 beside the report's, where it gave them (and the
    cross-validation accuracy beside the report's when the recipe asked for CV scores)."""
    rows = []
    for r in leaderboard:
        ref = reference.get(r["model"], {}) if isinstance(reference.get(r["model"]), dict) else {}
        extra = {}
        if cv:
            score = cv.get(r["model"])
            extra = {
                "cv_accuracy": round(score["mean"], 4) if score else "",
                "cv_std": round(score["std"], 4) if score else "",
                "report_cv_accuracy": ref.get("cv_accuracy", ""),
            }
        rows.append(
            {
                "model": r["model"],
                "accuracy": r["accuracy"],
                "report_accuracy": ref.get("accuracy", ""),
                "f1_macro": r["f1_macro"],
                "report_f1_macro": ref.get("f1_macro", ""),
                "train_seconds": r["train_seconds"],
                "report_train_seconds": ref.get("train_seconds", ""),
                **extra,
            }
        )
    return rows


def comparison_tables(rows: list[dict[str, Any]], recipe: Recipe) -> list[Table]:
    """glyphlab's scores beside the report's, as table events (and the CV scores in a table of their own: nine
    columns do not fit a terminal)."""

    def fmt(v: Any, digits: int = 4) -> str:
        return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "—"

    tables = [
        Table(
            f"glyphlab against {recipe.reference.get('source', 'the report')}",
            ("model", "accuracy", "report", "macro F1", "report", "train s", "report"),
            tuple(
                (
                    r["model"],
                    fmt(r["accuracy"]),
                    fmt(r["report_accuracy"]),
                    fmt(r["f1_macro"]),
                    fmt(r["report_f1_macro"]),
                    fmt(r["train_seconds"], 1),
                    fmt(r["report_train_seconds"], 1),
                )
                for r in rows
            ),
        )
    ]
    scored = [r for r in rows if r.get("cv_accuracy", "") != ""]
    if scored:
        tables.append(
            Table(
                "cross-validation accuracy (train+val)",
                ("model", "CV accuracy", "report"),
                tuple(
                    (r["model"], f"{fmt(r['cv_accuracy'])} ± {fmt(r['cv_std'])}", fmt(r["report_cv_accuracy"]))
                    for r in scored
                ),
            )
        )
    return tables
