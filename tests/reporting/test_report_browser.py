"""report.html in a real browser: headless Debian Chromium loads every image, shows one leaderboard row per
model and logs no error; ``--pdf`` prints it.

No WebDriver needed: a copy of the page gets a probe script as the first thing in <head> (it records errors,
failed resources and console.error calls); on ``load`` it writes what it saw into the DOM as JSON, and
``chromium --dump-dom`` prints that DOM. Needs the Debian package ``chromium`` (skipped without it).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

from glyphlab.reporting.pdf import BROWSERS, headless_args, print_pdf
from glyphlab.runfolder import REPORT_PDF

REPORT_MODELS = ["logreg", "random-forest"]  # as in conftest.py


def _browser() -> str | None:
    import shutil

    return next((p for p in map(shutil.which, BROWSERS) if p), None)


BROWSER = _browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on PATH: `apt-get install -y chromium` (Debian) to run the browser tests"
)

PROBE = """<script>
window.__probe = {errors: [], failed: []};
window.addEventListener('error', function (e) {
  if (e.target && e.target !== window && (e.target.src || e.target.href)) {
    window.__probe.failed.push(String(e.target.src || e.target.href).slice(0, 80));
  } else { window.__probe.errors.push(String(e.message)); }
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__probe.errors.push('rejection: ' + e.reason); });
(function () { var err = console.error; console.error = function () {
  window.__probe.errors.push(Array.prototype.join.call(arguments, ' ')); return err.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var t = performance.getEntriesByType('navigation')[0];
  var out = {
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.alt; }),
    widest: Math.max.apply(null, imgs.map(function (i) { return i.getBoundingClientRect().right; }).concat([0])),
    viewport: document.documentElement.clientWidth,
    scrollWidth: document.documentElement.scrollWidth,
    leaderboard: Array.prototype.map.call(document.querySelectorAll('#leaderboard-table tbody tr'),
                                          function (r) { return r.getAttribute('data-model'); }),
    navTargetsMissing: Array.prototype.filter.call(document.querySelectorAll('nav a[href^="#"]'),
      function (a) { return !document.getElementById(a.getAttribute('href').slice(1)); }).length,
    loadMs: t ? Math.round(t.loadEventStart) : null,
    errors: window.__probe.errors, failed: window.__probe.failed
  };
  var pre = document.createElement('pre'); pre.id = 'glyphlab-probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _probe(report: Path, tmp_path: Path, width: int = 1280) -> dict:
    page = report.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    cmd = headless_args(BROWSER, str(tmp_path / "profile")) + [
        f"--window-size={width},900",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probed.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="glyphlab-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the probe did not report (exit {proc.returncode}): {proc.stderr[-1500:]}"
    return json.loads(html.unescape(m.group(1)))


def test_report_renders_in_chromium(built_report: Path, tmp_path: Path):
    seen = _probe(built_report, tmp_path)
    assert seen["errors"] == [] and seen["failed"] == []
    assert seen["images"] >= 8 and seen["broken"] == []
    assert sorted(seen["leaderboard"]) == sorted(REPORT_MODELS)
    assert seen["navTargetsMissing"] == 0
    assert seen["scrollWidth"] <= seen["viewport"]  # nothing wider than the window: no sideways scrolling
    assert seen["widest"] <= seen["viewport"]


def test_report_fits_a_phone(built_report: Path, tmp_path: Path):
    seen = _probe(built_report, tmp_path, width=420)
    assert seen["broken"] == [] and seen["errors"] == []
    assert seen["widest"] <= seen["viewport"] + 1  # images shrink to the column


def test_pdf(built_report: Path, tmp_path: Path):
    pdf = print_pdf(built_report, tmp_path / REPORT_PDF)
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 50_000
