"""The comparison page: one self-contained HTML file (inline CSS, the plot a base64 PNG, no network).

Written by ``glyphlab compare RUN... --out DIR`` beside ``comparison.csv`` and ``accuracy_vs_time.png``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from glyphlab.evaluation.comparison import Comparison, differing_params
from glyphlab.fileio import write_bytes, write_csv, write_text
from glyphlab.reporting.figures import png_bytes
from glyphlab.reporting.html import data_uri

PAGE = "compare.html"
TABLE = "comparison.csv"
PLOT = "accuracy_vs_time.png"
#: a McNemar p-value below this is marked as a real difference on the page
ALPHA = 0.05
_MARKERS = "osD^vP*X"


def accuracy_vs_time(comparison: Comparison) -> bytes:
    """Every model of every run: training time (log) against test accuracy with its 95 % interval,
    one marker shape per test set, so points on different test sets are never read as one ranking."""
    fig = Figure(figsize=(10, 5.5))
    ax = fig.subplots()
    for i, g in enumerate(comparison.groups):
        t = np.array([max(m.train_seconds, 1e-3) for m in g.models])
        a = np.array([m.accuracy for m in g.models])
        err = np.array(
            [[m.accuracy - m.accuracy_ci[0] for m in g.models], [m.accuracy_ci[1] - m.accuracy for m in g.models]]
        )
        ax.errorbar(
            t,
            a,
            yerr=err,
            fmt=_MARKERS[i % len(_MARKERS)],
            ms=7,
            capsize=3,
            label=f"test set {g.test_set} ({g.dataset}, {g.n_test:,} images)",
        )
        for m, x, y in zip(g.models, t, a):
            ax.annotate(m.name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))  # 2, 5, 10 rather than 2×10⁰
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("test accuracy (95 % Wilson interval)")
    ax.set_title("accuracy against training time, all compared runs")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.2, y=0.15)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return png_bytes(fig)


def write_table(comparison: Comparison, path: Path) -> Path:
    return write_csv(path, comparison.rows())


def _ci(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.4f} <span class=ci>[{ci[0]:.4f}, {ci[1]:.4f}]</span>"


def render(comparison: Comparison, plot_png: bytes) -> str:
    e = html.escape
    parts = []
    for g in comparison.groups:
        rows = "".join(
            f"<tr><td>{rank}</td><td>{e(Path(m.run).name)}</td><td><b>{e(m.label)}</b>"
            f"{'' if m.label == m.registry_model else ' <span class=dim>(' + e(m.registry_model) + ')</span>'}</td>"
            f"<td>{e(m.variants) or '—'}</td>"
            f"<td class=params>{e(differing_params(m, comparison.varying_params)) or '—'}</td>"
            f"<td class=num>{_ci(m.accuracy, m.accuracy_ci)}</td><td class=num>{_ci(m.f1_macro, m.f1_macro_ci)}</td>"
            f"<td class=num>{m.train_seconds:,.1f}</td></tr>"
            for rank, m in enumerate(g.models, 1)
        )
        tests = "".join(
            f"<tr class='{'sig' if p.test.pvalue < ALPHA else ''}'><td>{e(p.a)}</td><td>{e(p.b)}</td>"
            f"<td class=num>{p.test.only_a}</td><td class=num>{p.test.only_b}</td>"
            f"<td class=num>{p.test.pvalue:.4g}</td><td>{p.test.method}</td>"
            f"<td>{'yes' if p.test.pvalue < ALPHA else 'no'}</td></tr>"
            for p in g.pairs
        )
        pair_part = (
            (
                f"<h3>McNemar's test, pairs of models on this test set</h3><table><thead><tr><th>A</th><th>B</th>"
                "<th>only A right</th><th>only B right</th><th>p-value</th><th>method</th>"
                f"<th>differ at {ALPHA}?</th></tr></thead><tbody>{tests}</tbody></table>"
            )
            if g.pairs
            else ("<p class=dim>One model on this test set: nothing to pair it with.</p>")
        )
        parts.append(
            f"<section><h2>Test set <code>{e(g.test_set)}</code> — {e(g.dataset)}, {g.n_test:,} images</h2>"
            "<table><thead><tr><th>#</th><th>run</th><th>model</th><th>variants</th><th>params that differ</th>"
            "<th>accuracy [95 % CI]</th><th>macro F1 [95 % CI]</th><th>train s</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{pair_part}</section>"
        )
    note = (
        ""
        if len(comparison.groups) == 1
        else f"<p class=warn>These runs were scored on {len(comparison.groups)} different test sets: each is ranked on "
        "its own, and no model is compared with one from another test set.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="glyphlab">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>glyphlab: run comparison</title>
<style>
body {{ font-family: system-ui, "DejaVu Sans", sans-serif; margin: 24px auto; max-width: 1180px; color: #1d2330;
       background: #f6f7fa; padding: 0 18px; font-size: 15px; }}
section {{ background: #fff; border: 1px solid #e3e7ee; border-radius: 10px; padding: 16px 20px; margin: 18px 0; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.2rem; margin-top: 0; }} h3 {{ font-size: 1rem; margin: 18px 0 6px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
th, td {{ text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e7ee; vertical-align: top; }}
th {{ background: #fbfcfe; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
td.params {{ font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.8rem; }}
.ci, .dim {{ color: #8b95a3; font-size: 0.82rem; }}
tr.sig td {{ background: #e5f5ec; }}
.warn {{ background: #fff6dd; border-radius: 8px; padding: 8px 12px; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Run comparison</h1>
<p class=dim>{sum(len(g.models) for g in comparison.groups)} models in {len(comparison.groups)} test-set group(s).
Accuracy intervals are Wilson score intervals, macro-F1 intervals a 1,000-resample bootstrap; McNemar's test uses
the images exactly one of the two models got right (exact binomial below 25 such images).</p>
{note}
<section><img alt="accuracy against training time" src="{data_uri(plot_png)}"></section>
{"".join(parts)}
</body></html>
"""


def write_page(comparison: Comparison, out: Path) -> Path:
    """Write compare.html, comparison.csv and accuracy_vs_time.png into ``out``; returns the page's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot = accuracy_vs_time(comparison)
    write_bytes(out / PLOT, plot)
    write_table(comparison, out / TABLE)
    page = out / PAGE
    write_text(page, render(comparison, plot))
    return page
