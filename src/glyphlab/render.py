"""The terminal renderers of the use cases' results: the CLI calls a use case and hands its result here.

Rendering only: nothing here computes, reads a model or writes a file, so the CLI and the API cannot differ
in what a step does, only in how its result is shown (a Rich table here, a DataFrame or an object in a
notebook).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def table(console: Console, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table of text cells ("glyphlab[timm]" is text, not Rich markup)."""
    out = Table(title=title)
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*(escape(cell) for cell in row))
    console.print(out)


def explained(console: Console, done: Any, out: Path) -> None:
    """``glyphlab explain``: a row per file (class, runner-up, PNG, or why it could not be read)."""
    out_table = Table(title=f"{done.model_id}: {done.method} → {out}")
    for col in ("file", "class", "runner-up", "png"):
        out_table.add_column(col)
    rows = {
        r.file: (f"{r.label} {r.probability:.3f}", f"{r.runner_up} {r.runner_up_probability:.3f}", str(r.png))
        for r in done.images
    }
    for f in done.files:
        cells = rows[f] if f in rows else ("[red]error[/]", "", f"[red]{escape(str(done.errors[f]))}[/]")
        out_table.add_row(str(f), *cells)
    console.print(out_table)
    if done.note:
        console.print(f"{done.method}: {done.note}")


def exported(console: Console, done: Any) -> None:
    """``glyphlab export``: the file written and the check it passed."""
    if done.precision == "int8":
        console.print(
            f"wrote [green]{done.path}[/] (int8) and {done.sidecar.name}: the same class as fp32 on "
            f"{done.agreement_with_fp32:.2%} of {done.checked_on} images; calibrated on {done.calibration}"
        )
        return
    console.print(
        f"wrote [green]{done.path}[/] and {done.sidecar.name} "
        f"(max |ONNX - model| = {done.max_abs_diff:.1e} on a probe batch)"
    )


def comparison(console: Console, comparison: Any) -> None:
    """``glyphlab compare``: per test set a ranked table with intervals, and McNemar's test between pairs."""
    from glyphlab.pipeline.compare import differing_params

    for g in comparison.groups:
        table = Table(title=f"test set {g.test_set} — {g.dataset}, {g.n_test:,} images")
        for col in ("#", "run", "model", "params that differ", "accuracy [95% CI]", "macro F1 [95% CI]", "train s"):
            table.add_column(
                col,
                justify="right" if col in ("#", "train s") else "left",
                no_wrap=col.startswith(("accuracy", "macro")),
            )
        for rank, m in enumerate(g.models, 1):
            table.add_row(
                str(rank),
                Path(m.run).name,
                m.label,
                differing_params(m, comparison.varying_params),
                f"{m.accuracy:.4f} [{m.accuracy_ci[0]:.3f}–{m.accuracy_ci[1]:.3f}]",
                f"{m.f1_macro:.4f} [{m.f1_macro_ci[0]:.3f}–{m.f1_macro_ci[1]:.3f}]",
                f"{m.train_seconds:,.1f}",
                style="bold green" if rank == 1 else None,
            )
        console.print(table)
        if g.pairs:
            pairs = Table(title="McNemar's test (images only one of the two got right)")
            for col in ("A", "B", "only A", "only B", "p-value", "differ at 0.05?"):
                pairs.add_column(col)
            for p in g.pairs:
                pairs.add_row(
                    p.a,
                    p.b,
                    str(p.test.only_a),
                    str(p.test.only_b),
                    f"{p.test.pvalue:.4g}",
                    "yes" if p.test.pvalue < 0.05 else "no",
                )
            console.print(pairs)
    if len(comparison.groups) > 1:
        console.print(f"[yellow]{len(comparison.groups)} different test sets: each is ranked on its own.[/]")


def robustness(console: Console, result: Any) -> None:
    """``glyphlab robustness``: accuracy per angle and model, the mean and the spread, and the files written."""
    table = Table(title=f"accuracy under rotation ({result.n_images:,} test images per angle)")
    table.add_column("angle", justify="right")
    for name in result.models:
        table.add_column(name, justify="right")
    for j, angle in enumerate(result.angles):
        table.add_row(f"{angle:g}°", *[f"{result.accuracy[i, j]:.4f}" for i in range(len(result.models))])
    table.add_section()
    table.add_row("mean", *[f"{result.accuracy[i].mean():.4f}" for i in range(len(result.models))], style="bold")
    table.add_row("max-min", *[f"{result.spread(n):.4f}" for n in result.models], style="bold")
    console.print(table)
    console.print(f"wrote [green]{result.csv_path}[/] and [green]{result.png_path}[/]")


def readings(console: Console, done: Any) -> None:
    """``glyphlab read``: per picture its line(s) as text, confidence and each character with its runner-up."""
    table = Table(title=f"{done.model_id} ({done.backend})")
    table.add_column("file")
    table.add_column("text", style="bold")
    table.add_column("p", justify="right")
    table.add_column("characters (p, runner-up)")
    for r in done.rows:
        if "error" in r:
            table.add_row(
                r["source"],
                "[yellow]no ink[/]" if r.get("no_ink") else "[red]error[/]",
                "",
                f"[yellow]{escape(r['error'])}[/]",
            )
            continue
        for k, line in enumerate(r["lines"]):
            chars = " ".join(
                f"{c['label']} {c['probability']:.2f}"
                + (
                    f" ({c['runner_up']} {c['runner_up_probability']:.2f})"
                    if c["runner_up"] is not None and c["runner_up_probability"] >= 0.01
                    else ""
                )
                for c in line["chars"]
            )
            table.add_row(
                r["source"] if k == 0 else "",
                escape(line["text"]) + ("" if line["matches"] else " [yellow](no match)[/]"),
                f"{line['confidence']:.3f}",
                chars,
            )
    console.print(table)


# -- glyphlab predict --------------------------------------------------------------------------------------------
def predictions_document(result: Any) -> dict:
    """``glyphlab predict --json``: the rows and what produced them (model, backend, image preparation)."""
    return {
        "model_id": result.model_id,
        "backend": result.backend,
        "preprocessing": result.preprocessing.to_dict(),
        "predictions": result.rows,
    }


def predictions(console: Console, result: Any, top_k: int, show_inputs: Path | None) -> None:
    """``glyphlab predict``: a row per file (class, probability, top k), or why it was not classified."""
    caption = f"images: {result.preprocessing.config.describe()}"
    table = Table(title=f"{result.model_id} ({result.backend})", caption=caption)
    table.add_column("file")
    table.add_column("class", style="bold")
    table.add_column("p", justify="right")
    table.add_column(f"top {top_k}")
    for r in result.rows:
        if r.get("no_ink"):
            table.add_row(r["file"], "[yellow]no ink[/]", "", "[yellow]blank image: nothing to classify[/]")
        elif r.get("several_glyphs"):
            table.add_row(r["file"], "[yellow]several[/]", "", f"[yellow]{escape(r['error'])}[/]")
        elif "error" in r:
            table.add_row(r["file"], "[red]error[/]", "", f"[red]{escape(r['error'])}[/]")
        else:
            top = ", ".join(f"{t['class_name']} {t['probability']:.3f}" for t in r["top"])
            table.add_row(r["file"], r["class_name"], f"{r['top'][0]['probability']:.3f}", top)
    console.print(table)
    if show_inputs is not None and any("input" in r for r in result.rows):
        typer.echo(f"what the model saw: {show_inputs}/ (one PNG per file, and inputs.png)")


def predict_summary(console: Console, result: Any, as_json: bool) -> None:
    """``glyphlab predict --out``: how many rows went where, how fast, and how many files failed."""
    summary = {
        "model_id": result.model_id,
        "backend": result.backend,
        "out": str(result.out),
        "written": result.written,
        "failed": result.failed,
        "skipped": result.skipped,
        "seconds": round(result.seconds, 3),
        "executor": result.executor,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    skipped = f", {result.skipped} already there" if result.skipped else ""
    console.print(
        f"{result.written} rows written to [cyan]{escape(str(result.out))}[/] ({result.failed} could not be "
        f"classified{skipped}) in {result.seconds:.1f} s, {result.rate:,.0f} files/s on {result.executor}",
        soft_wrap=True,
    )
