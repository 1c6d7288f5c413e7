"""The ``report`` step: RUN/report.html (and report.pdf) rebuilt from the run folder's files alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Report:
    """The written page, its size, and the PDF when one was asked for."""

    html: Path
    pdf: Path | None

    @property
    def megabytes(self) -> float:
        return self.html.stat().st_size / 1e6


def report(run_dir: Path, pdf: bool = False) -> Report:
    """Write the report (no model is loaded, nothing retrained); ``pdf`` prints it through headless Chromium."""
    from glyphlab.reporting.html import build_report  # local: jinja2 and the report's figures load on demand
    from glyphlab.runfolder import REPORT_PDF

    html = build_report(Path(run_dir), pdf=pdf)
    return Report(html, html.parent / REPORT_PDF if pdf else None)
