"""``glyphlab compare`` and ``glyphlab runs`` over run folders: grouping by test set, intervals, McNemar,
the HTML page (rendered in Chromium) and the one-line run list."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from typer.testing import CliRunner

from glyphlab.cli import app
from glyphlab.pipeline.compare import compare, list_runs
from glyphlab.reporting.compare import write_page
from glyphlab.reporting.pdf import BROWSERS, headless_args
from glyphlab.runfolder import ModelFolder

N_CLASSES = 4


def _make_run(root: Path, name: str, test_seed: int, models: dict[str, tuple[float, dict]], created: str) -> Path:
    """A run folder as `glyphlab run` leaves it, with predictions of a chosen accuracy per model."""
    run = root / name
    rng = np.random.default_rng(test_seed)
    n = 300
    labels = rng.integers(0, N_CLASSES, n)
    images = rng.integers(0, 256, (n, 8, 8)).astype(np.uint8)
    (run / "models").mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"dataset": "toy", "models": list(models), "variants": "", "created": created, "layout": 2})
    )
    np.savez_compressed(run / "test_images.npz", images=images, labels=labels)
    for i, (label, (acc, params)) in enumerate(models.items()):
        wrong = np.random.default_rng(100 + i).random(n) > acc
        pred = np.where(wrong, (labels + 1) % N_CLASSES, labels)
        proba = np.eye(N_CLASSES)[pred]
        model_dir = run / "models" / label
        ModelFolder(model_dir).write_predictions(labels, proba)
        (model_dir / "metrics.json").write_text(
            json.dumps(
                {
                    "accuracy": float((pred == labels).mean()),
                    "f1_macro": float((pred == labels).mean()),
                    "train_seconds": 1.0 + i,
                    "registry_model": params.pop("_model", label),
                    "params": params,
                }
            )
        )
        ModelFolder(model_dir).commit()
    return run


@pytest.fixture
def three_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    _make_run(root, "a", 0, {"svm": (0.97, {"C": 10.0}), "logreg": (0.90, {"C": 0.1})}, "2026-12-01T10:00:00+00:00")
    _make_run(root, "b", 0, {"logreg": (0.88, {"C": 1.0})}, "2026-12-01T11:00:00+00:00")
    _make_run(root, "c", 5, {"logreg": (0.95, {"C": 0.1})}, "2026-12-01T12:00:00+00:00")  # another test set
    return root


def test_groups_by_test_set_and_ranks_within(three_runs: Path):
    comp = compare([three_runs])
    assert [len(g.models) for g in comp.groups] == [3, 1]
    same = comp.groups[0]
    assert [m.name for m in same.models] == ["a/svm", "a/logreg", "b/logreg"]
    assert comp.groups[1].models[0].name == "c/logreg"  # the better score elsewhere is never ranked with them
    assert {(p.a, p.b) for p in same.pairs} == {("a/svm", "a/logreg"), ("a/svm", "b/logreg"), ("a/logreg", "b/logreg")}
    assert comp.groups[1].pairs == []
    # C differs between the logreg runs: shown; svm's C is not compared with anything
    assert comp.varying_params["logreg"] == ["C"] and comp.varying_params["svm"] == []
    for m in same.models:
        assert m.accuracy_ci[0] < m.accuracy < m.accuracy_ci[1]


def test_mcnemar_p_value_equals_statsmodels_on_the_same_counts(three_runs: Path):
    comp = compare([three_runs / "a", three_runs / "b"])
    models = {m.name: m for m in comp.groups[0].models}
    for pair in comp.groups[0].pairs:
        a, b = models[pair.a].correct, models[pair.b].correct
        table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
        ref = sm_mcnemar(table, exact=pair.test.method == "exact", correction=True)
        assert pair.test.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    svm_vs_b = next(p for p in comp.groups[0].pairs if p.b == "b/logreg" and p.a == "a/svm")
    assert svm_vs_b.test.pvalue < 0.05  # 97 % against 88 % on 300 images is a real difference


def test_cli_compare_and_runs(three_runs: Path, tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(app, ["compare", str(three_runs), "--out", str(tmp_path / "cmp")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "2 different test sets" in res.output and "McNemar" in res.output
    rows = (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[0].startswith("test_set,rank,run,model")
    res = runner.invoke(app, ["runs", str(three_runs)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert [ln.split()[0] for ln in lines] == ["c", "b", "a"]  # newest first
    assert "best svm 0.9" in lines[2]
    res = runner.invoke(app, ["compare", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())


def test_a_model_without_its_commit_marker_is_left_out(three_runs: Path):
    """A model whose done.json is missing was killed half-way."""
    ModelFolder(three_runs / "a" / "models" / "logreg").file("done.json").unlink()
    names = [m.name for g in compare([three_runs / "a"]).groups for m in g.models]
    assert names == ["a/svm"]  # logreg has metrics and predictions but no done.json


def test_runs_marks_unfinished(three_runs: Path):
    cfg = json.loads((three_runs / "b" / "config.json").read_text())
    (three_runs / "b" / "config.json").write_text(json.dumps({**cfg, "models": ["logreg", "svm"]}))
    summary = {s.path.name: s for s in list_runs(three_runs)}
    assert (summary["b"].finished, summary["b"].models) == (1, 2)


BROWSER = next((p for p in map(shutil.which, BROWSERS) if p), None)

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e.target.src)); }, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {images: imgs.length, broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
             groups: document.querySelectorAll('section h2').length, rows: document.querySelectorAll('tbody tr').length,
             scrollWidth: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth,
             errors: window.__errors};
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH: `apt-get install -y chromium` to run browser tests")
def test_comparison_page_renders_in_chromium(three_runs: Path, tmp_path: Path):
    page = write_page(compare([three_runs]), tmp_path / "cmp")
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    cmd = headless_args(BROWSER, str(tmp_path / "profile")) + [
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probed.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-1500:]
    seen = json.loads(html.unescape(m.group(1)))
    assert seen["errors"] == [] and seen["images"] == 1 and seen["broken"] == 0
    assert seen["groups"] == 2
    assert seen["rows"] == 4 + 3  # four models, three pairs
    assert seen["scrollWidth"] <= seen["viewport"]


def test_python_api_compare_and_runs(three_runs: Path, tmp_path: Path):
    import glyphlab as gl

    comp = gl.compare(three_runs / "a", three_runs / "b", three_runs / "c")
    assert list(comp.table["model"]) == ["svm", "logreg", "logreg", "logreg"]
    assert list(comp.table["rank"]) == [1, 2, 3, 1]
    assert len(comp.mcnemar) == 3 and comp.mcnemar["p_value"].between(0, 1).all()
    page = comp._repr_html_()
    assert page.count("test set ") == 2 and "<table" in page
    assert comp.write(tmp_path / "page").name == "compare.html"
    listed = gl.runs(three_runs)
    assert list(listed["run"]) == ["c", "b", "a"] and listed.loc[2, "best"] == "svm"
