"""report.pdf: the report page printed by a headless Chromium (or Chrome) found on PATH."""

from __future__ import annotations

import html as _html
import shutil
import subprocess
import tempfile
from pathlib import Path

from glyphlab.errors import GlyphlabError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise GlyphlabError(
        "--pdf needs a Chromium or Chrome on PATH (looked for " + ", ".join(BROWSERS) + "). Install one, e.g. "
        "`sudo apt-get install chromium` (Debian/Ubuntu) or `brew install --cask chromium` (macOS); "
        "report.html itself was not affected"
    )


def headless_args(browser: str, profile: str) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ]


def print_pdf(html_path: Path, pdf_path: Path, timeout: float = 120) -> Path:
    browser = find_browser()
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    with tempfile.TemporaryDirectory(prefix="glyphlab-chromium-") as profile:
        cmd = headless_args(browser, profile) + [
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf_path}",
            html_path.as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise GlyphlabError(f"{browser} did not print the PDF within {timeout:.0f} s") from exc
    if not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = _html.unescape((proc.stderr or "").strip()[-600:])
        raise GlyphlabError(f"{browser} did not write {pdf_path} (exit {proc.returncode}): {tail}")
    return pdf_path
