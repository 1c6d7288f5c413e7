"""examples/quickstart.ipynb runs top to bottom in a fresh kernel, and its cells show what they should."""

import base64
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook's cells by tag, after running it in a folder of its own (it writes runs/ and models/)."""
    work = tmp_path_factory.mktemp("quickstart")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute()
    cells = {c.metadata["tags"][0]: c for c in nb.cells if c.cell_type == "code"}
    assert len(cells) == sum(c.cell_type == "code" for c in nb.cells), "every code cell has a tag the test reads"
    return cells, work


def _text(cell) -> str:
    parts = []
    for out in cell.outputs:
        parts.append(out.get("text", "") if out.output_type == "stream" else out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _html(cell) -> str:
    return "\n".join(out.get("data", {}).get("text/html", "") for out in cell.outputs)


def test_uses_only_the_public_names():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "import glyphlab as gl" in code and "from glyphlab" not in code and "glyphlab." not in code


def test_tables_show_as_html(executed):
    cells, _ = executed
    assert "mnist" in _html(cells["datasets"]) and "digits" in _html(cells["datasets"])
    assert "cnn-small" in _html(cells["models"]) and "logreg" not in _html(cells["models"])
    assert "train=300" in _text(cells["dataset"]) and "<table" in _html(cells["dataset"])
    assert "same predictions after loading: True" in _text(cells["model"])
    for tag in ("run", "leaderboard", "confusion", "most_confused", "top_losses"):
        assert "<table" in _html(cells[tag]), tag
    assert "svm" in _html(cells["leaderboard"]) and "logreg" in _html(cells["leaderboard"])


def test_quiet_steps_print_nothing(executed):
    cells, _ = executed
    for tag in ("run", "search"):
        assert not [o for o in cells[tag].outputs if o.output_type == "stream"], tag


def test_confusion_counts_are_the_run_folders(executed):
    cells, work = executed
    lines = _text(cells["confusion"]).splitlines()[2:]  # after the "predicted" and "true" header lines
    shown = np.array([[int(v) for v in line.split()[1:]] for line in lines])
    on_disk = np.loadtxt(work / "runs/quickstart/models/svm/confusion_counts.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(shown, on_disk)
    assert shown.sum() == 300


def test_figures_are_images(executed):
    cells, _ = executed
    for tag in ("plot_confusion", "plot_top_losses"):
        png = base64.b64decode(cells[tag].outputs[0]["data"]["image/png"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, tag


def test_files_report_search_and_mnist(executed):
    cells, work = executed
    predicted = _text(cells["predict"]).splitlines()[0].split()[1:]
    assert len(predicted) == 8 and set(predicted) <= set("0123456789")
    assert "report.html True" in _text(cells["report"]) and (work / "runs/quickstart/report.html").is_file()
    assert "trials.csv" in _text(cells["search"]) and "best_params.json" in _text(cells["search"])
    mnist = _text(cells["mnist"])
    assert "MNIST not found" in mnist or ("cnn-small" in mnist and "logreg" in mnist)
