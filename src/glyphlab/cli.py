"""The ``glyphlab`` command. Each step of the pipeline is one command; ``--help`` on each says how."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from glyphlab import render
from glyphlab.cli_options import (
    DataDir,
    DatasetOptions,
    ModelFolder,
    ServeAccessLog,
    ServeApiKeyFile,
    ServeBackend,
    ServeBatchWaitMs,
    ServeBodyTimeout,
    ServeCorsOrigin,
    ServeExposeDetails,
    ServeHeaderTimeout,
    ServeHost,
    ServeMaxBatch,
    ServeMaxBodyMb,
    ServeMaxBufferedMb,
    ServeMaxConcurrency,
    ServeMaxPixels,
    ServeMaxQueue,
    ServeMetrics,
    ServeMetricsPublic,
    ServeMicroBatch,
    ServePort,
    ServeQueueTimeout,
    ServeRateLimit,
    ServeThreads,
    ServeWorkers,
    Track,
    TrackingUri,
    Variants,
)
from glyphlab.user_errors import user_error_message

console = Console()


class _Commands(TyperGroup):
    """Every command runs inside this one handler: the engine's events are drawn by one console observer, and a
    user error becomes one line on the console and exit code 2 (instead of a traceback, or click's bare
    "Aborted." for an EOFError from an empty file)."""

    def invoke(self, ctx: click.Context):
        from glyphlab.console import ConsoleObserver
        from glyphlab.events import observing

        observer = ConsoleObserver(console)  # the engine's events, drawn on the terminal
        try:
            with observing(observer):
                try:
                    return super().invoke(ctx)
                finally:
                    observer.close()  # a step that raised must not leave a spinner or bar drawn
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            message = user_error_message(exc)
            if message is None:
                raise
            console.print("[bold red]error:[/] " + escape(message), soft_wrap=True)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    cls=_Commands,
    help="glyphlab: handwritten-character classification from images to a served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _dataset_options(items: list[str]) -> dict:
    from glyphlab.pipeline.options import parse_dataset_options

    return parse_dataset_options(items)


def _str(path: Path | None) -> str | None:
    return str(path) if path else None


@app.command("datasets")
def datasets_cmd() -> None:
    """List the built-in datasets, their sizes and where they come from."""
    from glyphlab.pipeline.listings import dataset_rows

    rows = [(d.name, d.sizes, d.description, d.source) for d in dataset_rows()]
    render.table(console, "datasets", ("name", "sizes", "description", "source"), rows)


@app.command("models")
def models_cmd() -> None:
    """List the models in the registry with their parameters and defaults (and those an extra would add)."""
    from glyphlab.pipeline.listings import model_rows

    rows = [
        (m.name, m.family, m.description, f"pip install 'glyphlab[{m.extra}]'" if m.extra else m.parameters)
        for m in model_rows(missing=True)
    ]
    render.table(console, "models", ("name", "family", "description", "parameters (defaults)"), rows)


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    dataset: Annotated[
        str, typer.Option(help="Dataset name (see `glyphlab datasets`) or a path to a file/folder.")
    ] = "digits",
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated model names (see `glyphlab models`); LABEL=NAME runs a model under another label."
        ),
    ] = "logreg,svm,random-forest",
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/DATE-DATASET).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits, variants and models.")] = 0,
    param: Annotated[list[str], typer.Option("--param", help="model.key=value or key=value (repeatable).")] = [],
    val_fraction: Annotated[float, typer.Option(help="Share of train held out for validation.")] = 0.1,
    variant: Variants = "",
    dataset_option: DatasetOptions = [],
    data_dir: DataDir = None,
    resume: Annotated[
        Path | None, typer.Option(help="Resume an interrupted run folder (its config is reused).")
    ] = None,
    report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
    exclude: Annotated[
        Path | None,
        typer.Option(help="A label_issues.csv from `glyphlab audit`: train without those training images."),
    ] = None,
    track: Track = None,
    tracking_uri: TrackingUri = None,
    register: Annotated[
        str | None,
        typer.Option(
            help="Register the best model in MLflow's model registry under this name (a pyfunc that loads glyphlab's "
            "own model folder, no pickle) and point the alias 'champion' at it: "
            "mlflow models serve -m models:/NAME@champion. Implies --track mlflow."
        ),
    ] = None,
    nproc_per_node: Annotated[
        int,
        typer.Option(
            help="Train the networks data-parallel in this many processes on this machine (torchrun "
            "--standalone; on several machines call torchrun yourself, see README)."
        ),
    ] = 1,
) -> None:
    """Train each model, evaluate it on the test split and write a run folder with a leaderboard."""
    if nproc_per_node > 1 and not _under_torchrun():
        raise typer.Exit(_torchrun(nproc_per_node))
    from glyphlab.pipeline.options import parse_params
    from glyphlab.pipeline.resume import resume_config
    from glyphlab.pipeline.run import RunConfig, run

    tracking = {"track": track, "tracking_uri": tracking_uri, "register": register}

    if resume is not None:
        # compared by name: typer may bring its own copy of click's ParameterSource enum
        settings = ("dataset", "models", "out", "seed", "param", "val_fraction", "variant", "dataset_option", "exclude")
        given = [
            "--" + name.replace("_", "-")
            for name in settings
            if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
        ]
        cfg = resume_config(resume, given, _str(data_dir))
        run(cfg, resume, resume=True, report=report, **tracking)
        return
    names = [m.strip() for m in models.split(",") if m.strip()]
    cfg = RunConfig(
        dataset=dataset,
        models=names,
        params=parse_params(param, names),
        seed=seed,
        val_fraction=val_fraction,
        variants=variant,
        data_dir=str(data_dir) if data_dir else None,
        dataset_options=_dataset_options(dataset_option),
        exclude=str(exclude) if exclude else "",
    )
    run(cfg, out, report=report, **tracking)


@app.command("evaluate")
def evaluate_cmd(
    model_path: Annotated[
        Path, typer.Argument(help="A run folder, a run's models/NAME folder, or a saved model folder.")
    ],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset name or path to evaluate on (default: the run's own "
            "dataset, variants and test split). A dataset without a test "
            "split, e.g. a folder of new images, is scored on all of it."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write predictions and figures.")] = None,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            help="Variants applied in order, e.g. 'rotate:-180:180' (default: the run's own without --dataset).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the variants (default: the run's).")] = None,
    dataset_option: DatasetOptions = [],
    data_dir: DataDir = None,
) -> None:
    """Recompute metrics of saved model(s) on the run's own test split or any dataset, without retraining."""
    from glyphlab.pipeline.evaluate import evaluate_saved

    evaluate_saved(model_path, dataset, out, variant, seed, data_dir, dataset_options=_dataset_options(dataset_option))


@app.command("eda")
def eda_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name or path.")] = "digits",
    out: Annotated[Path, typer.Option(help="Folder for the PNGs.")] = Path("eda"),
    variant: Variants = "",
    seed: int = 0,
    dataset_option: DatasetOptions = [],
    data_dir: DataDir = None,
) -> None:
    """Class counts, sample grid, mean image per class and pixel histogram, as PNGs."""
    from glyphlab.pipeline.eda import EdaSettings, eda

    for p in eda(
        EdaSettings(
            dataset=dataset,
            data_dir=str(data_dir) if data_dir else None,
            dataset_options=_dataset_options(dataset_option),
            variants=variant,
            seed=seed,
            out=out,
        )
    ):
        console.print(f"wrote [green]{p}[/]")


@app.command("recipe")
def recipe_cmd(
    name: Annotated[str | None, typer.Argument(help="A shipped recipe name or a path to a recipe TOML file.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the shipped recipes.")] = False,
    quick: Annotated[
        bool, typer.Option(help="The recipe's quick mode: a few hundred images, for a smoke test.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/DATE-DATASET-RECIPE).")] = None,
    data_dir: DataDir = None,
    report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
    track: Track = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Run a whole seed study (data protocol, models, evaluation) and set its figures beside the report's."""
    from glyphlab.recipes import load_recipe, run_recipe, shipped_recipes

    if list_ or name is None:
        recipes = [(n, load_recipe(p)) for n, p in sorted(shipped_recipes().items())]
        render.table(
            console,
            "recipes (glyphlab recipe NAME; copy the file to make your own)",
            ("name", "dataset", "models", "description", "needs"),
            [
                (
                    n,
                    r.dataset.name,
                    ", ".join(r.models),
                    r.description,
                    ", ".join(f"glyphlab[{e}]" for e in sorted(set(r.needs_extras().values()))),
                )
                for n, r in recipes
            ],
        )
        return
    run_recipe(
        name,
        out,
        quick=quick,
        data_dir=str(data_dir) if data_dir else None,
        report=report,
        track=track,
        tracking_uri=tracking_uri,
    )


@app.command("search")
def search_cmd(
    dataset: Annotated[str, typer.Option(help="Dataset name or path.")] = "digits",
    model: Annotated[str | None, typer.Option(help="Model to tune (default: the space file's model).")] = None,
    space: Annotated[
        str,
        typer.Option(
            help="Space TOML file, or a shipped space: svm-default, seed002-pca-svm, seed002-cnn, seed004-cnn."
        ),
    ] = "svm-default",
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold (shared by all workers).")] = 20,
    cv: Annotated[int | None, typer.Option(help="Folds of the CV score of classical models (default 5).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting new trials after this many seconds.")] = None,
    sampler: Annotated[str, typer.Option(help="tpe | random | grid")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median | hyperband | none (networks, per epoch)")] = "median",
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL, e.g. postgresql://user:pw@host/db (default: sqlite in the run folder)."),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(help="Study name (default: MODEL-DATASET); workers sharing a storage use the same name."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/search-DATASET-MODEL-SPACE).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits, folds, sampler and models.")] = 0,
    refit: Annotated[
        bool, typer.Option(help="Refit the best parameters on train+val and evaluate once on test.")
    ] = True,
    data_dir: DataDir = None,
    variant: Variants = "",
    dataset_option: DatasetOptions = [],
    track: Track = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Hyper-parameter search (Optuna): resumable, CV-scored, shareable across machines; refits the best model."""
    from glyphlab.pipeline.search import SearchConfig, run_search

    cfg = SearchConfig(
        dataset=dataset,
        model=model,
        space=space,
        trials=trials,
        cv=cv,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        storage=storage,
        study=study,
        out=str(out) if out else None,
        seed=seed,
        data_dir=str(data_dir) if data_dir else None,
        refit=refit,
        variants=variant,
        dataset_options=_dataset_options(dataset_option),
    )
    run_search(cfg, track=track, tracking_uri=tracking_uri)


@app.command("audit")
def audit_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name or path (see `glyphlab datasets`).")] = "digits",
    model: Annotated[
        str | None, typer.Option(help="The model fitted on each fold (default: a small fast mlp).")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Folds of the out-of-fold probabilities.")] = 3,
    param: Annotated[list[str], typer.Option("--param", help="key=value for the fold model (repeatable).")] = [],
    split: Annotated[str | None, typer.Option(help="Comma-separated labeled splits to audit (default: all).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Audit folder (default: runs/audit-DATASET); RUN/audit puts the audit in a run's report."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the folds and the fold models.")] = 0,
    variant: Variants = "",
    dataset_option: DatasetOptions = [],
    data_dir: DataDir = None,
) -> None:
    """Find images whose label is probably wrong (out-of-fold probabilities + cleanlab): label_issues.csv and a
    picture of the top suspects; `glyphlab run --exclude AUDIT/label_issues.csv` then trains without them."""
    from glyphlab.pipeline.audit import DEFAULT_MODEL, AuditConfig, run_audit
    from glyphlab.pipeline.options import parse_params

    name = model or DEFAULT_MODEL
    cfg = AuditConfig(
        dataset=dataset,
        model=name,
        params=parse_params(param, [name])[name],
        folds=folds,
        seed=seed,
        variants=variant,
        data_dir=str(data_dir) if data_dir else None,
        dataset_options=_dataset_options(dataset_option),
        splits=[s.strip() for s in split.split(",") if s.strip()] if split else None,
    )
    result = run_audit(cfg, out)
    table = Table(title=f"top label-issue suspects of {result.n_audited:,} images ({len(result.issues):,} flagged)")
    for col in ("split", "index", "given", "suggested", "score"):
        table.add_column(col, justify="right" if col in ("index", "score") else "left")
    for r in result.issues[:10]:
        table.add_row(r["split"], str(r["index"]), r["given_label"], r["suggested_label"], f"{r['score']:.4f}")
    console.print(table)


@app.command("robustness")
def robustness_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (RUN/models/*/model and RUN/test_images.npz).")],
    angles: Annotated[
        str, typer.Option(help="START:STOP:STEP in degrees (stop excluded) or a list like 0,90,180.")
    ] = "0:360:15",
    dataset: Annotated[
        str | None, typer.Option(help="Score on this dataset's test split instead of the run's saved test images.")
    ] = None,
    data_dir: DataDir = None,
    limit: Annotated[
        int | None, typer.Option(help="Score a fixed random sample of this many test images per angle.")
    ] = None,
) -> None:
    """Accuracy of every saved model of a run with the test images rotated by each angle (csv, png, table)."""
    from glyphlab.pipeline.robustness import RobustnessSettings, robustness

    render.robustness(console, robustness(RobustnessSettings(run_dir, angles, dataset, data_dir, limit=limit)))


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `glyphlab run`.")],
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print report.pdf with a headless Chromium/Chrome.")] = False,
) -> None:
    """(Re)build RUN/report.html from the run folder's files alone: no model is loaded, nothing retrained."""
    from glyphlab.pipeline.report import report

    done = report(run_dir, pdf=pdf)
    console.print(f"report: [green]{done.html}[/] ({done.megabytes:.1f} MB)")
    if done.pdf is not None:
        console.print(f"pdf: [green]{done.pdf}[/]")


@app.command("compare")
def compare_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or folders that hold runs (e.g. runs/).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Also write compare.html, comparison.csv and accuracy_vs_time.png into this folder."),
    ] = None,
) -> None:
    """Many runs side by side: accuracy and macro F1 with 95 % intervals, grouped by test set, McNemar tests."""
    from glyphlab.pipeline.compare import compare

    comparison = compare(runs, out=out)
    render.comparison(console, comparison)
    if comparison.page is not None:
        console.print(f"comparison: [green]{comparison.page}[/]")


@app.command("runs")
def runs_cmd(
    folder: Annotated[Path, typer.Argument(help="The folder that holds your runs.")] = Path("runs"),
) -> None:
    """List runs newest first, one line each, with their best model (like `git log --oneline`)."""
    from glyphlab.pipeline.compare import list_runs

    summaries = list_runs(folder)
    if not summaries:
        console.print(f"no run folders in {folder}")
    for s in summaries:
        best = f"{s.best} {s.best_accuracy:.4f}" if s.best else "no finished model"
        unfinished = "" if s.finished >= s.models else f" [yellow]({s.finished}/{s.models} models finished)[/]"
        variants = f" +{s.variants}" if s.variants else ""
        console.print(
            f"[cyan]{escape(s.path.name)}[/] {s.created[:16].replace('T', ' ')}  "
            f"{escape(s.dataset + variants)}  best [bold]{escape(best)}[/]{unfinished}",
            soft_wrap=True,
        )


def _image_files(paths: list[Path]) -> list[Path]:
    from glyphlab.pipeline.inputs import image_files

    return image_files(paths)


@app.command("predict")
def predict_cmd(
    model_path: ModelFolder,
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Image files, folders of images, lists of paths (.txt, one a line) or CSVs of paths (a column "
            "named path or file); read lazily, so any number of files."
        ),
    ],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many classes to list per image.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    backend: Annotated[
        str, typer.Option(help="auto (ONNX Runtime when MODEL/model.onnx exists) | onnx | native")
    ] = "auto",
    max_pixels: Annotated[
        int, typer.Option(help="Refuse images with more pixels than this (a phone's 12 MP photo is 12,192,768).")
    ] = 50_000_000,
    show_inputs: Annotated[
        Path | None,
        typer.Option(
            "--show-inputs",
            help="Write what the model saw for each file (its prepared input) as a PNG into this "
            "folder, and a sheet of originals beside inputs (inputs.png). For a handful of files: keeps them all.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write one row per file to this file as the rows come (.jsonl, .csv or .parquet, by suffix) "
            "instead of printing them: for folders of any size.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=0, help="Local processes preparing files (0: every core from 5,000 files on).")
    ] = 0,
    resume: Annotated[bool, typer.Option(help="Add to --out, skipping the files it already holds.")] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="A Dask scheduler (tcp://host:8786) to shard the files over its workers, or 'local' for a "
            "local Dask cluster of --workers processes (glyphlab\\[cluster]; workers need the same paths)."
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Files per task (one batch through the model).")] = 256,
) -> None:
    """Classify image files (batch inference; ONNX Runtime when the model has an exported .onnx).

    Each file is prepared exactly as the model's manifest records (the image config it was trained with). A
    file with no ink (a blank page) is listed as "no ink", and a picture of several separate characters (a
    whole number) as "several glyphs", instead of being classified; the exit code is 1 when any file could
    not be read or classified. --out writes rows as they come (docs/batch.md).
    """
    from glyphlab.pipeline.predict import PredictSettings, predict, write_shown_inputs

    options = dict(top_k=top_k, backend=backend, max_pixels=max_pixels, out=out, resume=resume, workers=workers)
    keep = show_inputs is not None
    settings = PredictSettings(model_path, images, cluster=cluster, chunk_size=chunk_size, keep_inputs=keep, **options)
    result = predict(settings)  # its progress bar: the console observer's, from the job's events
    if show_inputs is not None and result.rows:
        write_shown_inputs(show_inputs, result)
    if out is not None:
        render.predict_summary(console, result, as_json)
    elif as_json:
        typer.echo(json.dumps(render.predictions_document(result), indent=2))
    else:
        render.predictions(console, result, top_k, show_inputs)
    if result.preprocessing.note.startswith("the manifest records no preprocessing"):
        typer.echo(f"note: {result.preprocessing.note}", err=True)
    if result.failed:
        raise typer.Exit(code=1)


@app.command("read")
def read_cmd(
    model_path: Annotated[Path, typer.Argument(help="A saved glyph model folder (or a run's models/NAME folder).")],
    images: Annotated[list[Path], typer.Argument(help="Pictures of a line of characters, or folders of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    charset: Annotated[str | None, typer.Option(help="Only these characters, e.g. 0-9 or A-Z0-9.")] = None,
    length: Annotated[int | None, typer.Option(min=1, help="Exactly this many characters per line.")] = None,
    pattern: Annotated[
        str | None, typer.Option(help="A regular expression each line must match, e.g. '\\d{5}'.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="A CSV (file,text) of the true strings: prints exact-string accuracy, character error rate and the "
            "most confused characters, and writes them (and a page of the misread pictures) into --report."
        ),
    ] = None,
    report: Annotated[
        Path, typer.Option(help="Where --labels writes readings.csv, confused.csv, misread.html.")
    ] = Path("reading-report"),
    backend: Annotated[
        str, typer.Option(help="auto (ONNX Runtime when MODEL/model.onnx exists) | onnx | native")
    ] = "auto",
    max_pixels: Annotated[int, typer.Option(help="Refuse images with more pixels than this.")] = 4_000_000,
) -> None:
    """Read a handwritten number or code: each picture's line(s) of characters as text, with each character's
    box, probability and runner-up (segmentation-recognition with the glyph model; see glyphlab.reading).

    Each character is prepared with the model's recorded image config. Several lines in one picture are read
    as one string each; a blank picture is listed as "no ink"; the exit code is 1 when any picture could not
    be read.
    """
    from glyphlab.pipeline.read import ReadSettings, read_files

    done = read_files(ReadSettings(model_path, images, charset, length, pattern, labels, report, backend, max_pixels))
    if as_json:
        payload = {"model_id": done.model_id, "backend": done.backend, "image_config": done.image_config}
        typer.echo(json.dumps({**payload, "readings": done.rows}, indent=2))
    else:
        render.readings(console, done)
    if done.score is not None:
        score = done.score
        confused = ", ".join(f"{a or '∅'}→{b or '∅'} {c}" for a, b, c in score.confused[:5]) or "none"
        typer.echo(
            f"{score.n} labelled pictures: exact-string accuracy {score.exact:.3f}, character error rate "
            f"{100 * score.cer:.2f} %; most confused: {confused}",
            err=as_json,
        )
        typer.echo(f"written: {', '.join(str(p) for p in done.written)}", err=as_json)
    if done.errors:
        raise typer.Exit(code=1)


@app.command("explain")
def explain_cmd(
    model_path: ModelFolder,
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images (PNG, JPEG, ...).")],
    method: Annotated[
        str,
        typer.Option(
            help="auto (ig for networks with Captum, else occlusion) | ig | occlusion | gradcam | coef (linear models)"
        ),
    ] = "auto",
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNGs (one per image).")] = Path("explanations"),
    steps: Annotated[int, typer.Option(min=1, help="Integrated Gradients steps.")] = 32,
) -> None:
    """Why the model chose its class and not the runner-up: one PNG per image (input, both maps, their difference)."""
    from glyphlab.pipeline.explain import ExplainSettings, explain

    done = explain(ExplainSettings(model_path, images, method, steps, out))
    render.explained(console, done, out)
    if done.errors:
        raise typer.Exit(code=1)


@app.command("export")
def export_cmd(
    model_path: ModelFolder,
    onnx: Annotated[
        Path | None,
        typer.Option("--onnx", help="Output .onnx file (default: MODEL/model.onnx, which predict and serve pick up)."),
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            help="int8: static int8 quantization (ONNX Runtime), calibrated "
            "on the run's training images, kept if it agrees with fp32 "
            "on >= 99 % of the validation images."
        ),
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option(help="Dataset (name or path) to calibrate int8 on, for a model outside a run folder."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(envvar="GLYPHLAB_DATA", help="Where datasets live.")] = None,
) -> None:
    """Export a model to ONNX (torch networks, logreg, random-forest), checked against the model to 1e-4."""
    from glyphlab.pipeline.export import ExportSettings, export

    render.exported(console, export(ExportSettings(model_path, onnx, quantize, calibration, _str(data_dir))))


@app.command("serve")
def serve_cmd(
    model_path: ModelFolder,
    host: ServeHost = "127.0.0.1",
    port: ServePort = 8000,
    workers: ServeWorkers = 1,
    max_body_mb: ServeMaxBodyMb = 5.0,
    max_concurrency: ServeMaxConcurrency = 8,
    max_queue: ServeMaxQueue = 1024,
    max_buffered_mb: ServeMaxBufferedMb = None,
    rate_limit: ServeRateLimit = None,
    queue_timeout: ServeQueueTimeout = 30.0,
    body_timeout: ServeBodyTimeout = 30.0,
    header_timeout: ServeHeaderTimeout = 10.0,
    micro_batch: ServeMicroBatch = 32,
    batch_wait_ms: ServeBatchWaitMs = 0.0,
    max_pixels: ServeMaxPixels = 4_000_000,
    max_batch: ServeMaxBatch = 64,
    backend: ServeBackend = "auto",
    threads: ServeThreads = 1,
    expose_details: ServeExposeDetails = False,
    access_log: ServeAccessLog = True,
    api_key_file: ServeApiKeyFile = None,
    cors_origin: ServeCorsOrigin = [],
    metrics: ServeMetrics = True,
    metrics_public: ServeMetricsPublic = True,
) -> None:
    """Serve the model over HTTP: POST /prediction, a drawing page at /, docs at /docs (uvicorn)."""
    from glyphlab.pipeline.serve import Listen, ServeSettings, serve

    settings = ServeSettings(
        max_bytes=int(max_body_mb * 1_000_000),
        max_pixels=max_pixels,
        max_batch=max_batch,
        max_concurrency=max_concurrency,
        max_queue=max_queue,
        queue_timeout_s=queue_timeout,
        micro_batch=micro_batch,
        batch_wait_ms=batch_wait_ms,
        body_timeout_s=body_timeout,
        header_timeout_s=header_timeout,
        expose_details=expose_details,
        rate_limit=rate_limit,
        max_buffered_mb=max_buffered_mb,
        backend=backend,
        threads=threads or None,
    )
    listen = Listen(host, port, workers, api_key_file, cors_origin, metrics, metrics_public, access_log)
    serve(model_path, settings, listen, announce=console.print)


def _under_torchrun() -> bool:
    import os

    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_WORLD_SIZE" in os.environ


def _torchrun(nproc: int) -> int:
    """This very command again under torchrun's elastic launcher (``torch.distributed.run``, one machine, a
    free rendezvous port), less ``--nproc-per-node``; its exit status."""
    import subprocess
    import sys

    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc-per-node":
            skip = True
        elif not a.startswith("--nproc-per-node="):
            args.append(a)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    return subprocess.run([*launcher, "-m", "glyphlab", *args]).returncode


def main() -> None:
    """The console entry point; user errors are turned into one line by :class:`_Commands`."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
