"""The ``compare`` and ``runs`` steps: many runs side by side, and the list of runs in a folder.

One use case for ``glyphlab compare`` / ``gl.compare`` and ``glyphlab runs`` / ``gl.runs``. The comparison is
computed from the run folders alone (:mod:`glyphlab.evaluation.comparison`: nothing retrained or loaded);
with ``out`` the page, table and plot are written there (:mod:`glyphlab.reporting.compare`).
"""

from __future__ import annotations

from pathlib import Path

from glyphlab.evaluation.comparison import (
    Comparison,
    RunSummary,
    compare_runs,
    differing_params,
    list_runs,
)

__all__ = ["Comparison", "RunSummary", "compare", "differing_params", "list_runs", "write_page"]


def compare(paths: list[Path], seed: int = 0, out: Path | None = None) -> Comparison:
    """Compare every finished model of the given runs (or folders of runs); with ``out`` also write
    compare.html, comparison.csv and accuracy_vs_time.png there (``Comparison.page`` is the page's path)."""
    comparison = compare_runs([Path(p) for p in paths], seed=seed)
    if out is not None:
        comparison.page = write_page(comparison, Path(out))
    return comparison


def write_page(comparison: Comparison, out: Path) -> Path:
    """The comparison page of an existing :class:`Comparison` in ``out``; returns its path."""
    from glyphlab.reporting.compare import write_page as _write_page  # local: matplotlib and the page on demand

    return _write_page(comparison, Path(out))
