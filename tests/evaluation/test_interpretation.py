import numpy as np
import pytest

from glyphlab.errors import RunFolderError
from glyphlab.evaluation.interpretation import Interpretation
from glyphlab.runfolder import RunFolder

Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
#        confident mistake ↓      mild mistake ↓
PROBA = np.array(
    [[0.05, 0.9, 0.05], [0.8, 0.1, 0.1], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.35, 0.45], [0.1, 0.1, 0.8]]
)


def test_tables_from_predictions():
    it = Interpretation(Y_TRUE, PROBA, ["a", "b", "c"], name="toy")
    cm = it.confusion_matrix()
    assert cm.to_numpy().dtype.kind == "i"
    assert cm.to_numpy().tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert cm.loc["a", "b"] == 1 and list(cm.index) == ["a", "b", "c"]
    assert it.confusion_matrix(normalize=True).loc["a"].sum() == pytest.approx(1.0)
    pairs = it.most_confused(k=5)
    assert sorted(pairs[["true", "predicted", "count"]].values.tolist()) == [["a", "b", 1], ["b", "c", 1]]
    top = it.top_losses(2)
    assert top["image"].tolist() == [0, 4]  # the 0.9-confident mistake first
    assert top["loss"].tolist() == pytest.approx([-np.log(0.05), -np.log(0.35)])
    assert top["predicted"].tolist() == ["b", "c"] and top["probability"].tolist() == pytest.approx([0.9, 0.45])
    assert it.accuracy == pytest.approx(4 / 6)
    assert "toy" in it._repr_html_() and "<table" in it._repr_html_()


def test_figures_show_in_jupyter_and_need_images():
    it = Interpretation(Y_TRUE, PROBA, ["a", "b", "c"], images=np.random.default_rng(0).random((6, 8, 8)))
    for fig in (it.plot_confusion_matrix(), it.plot_top_losses(4), it.plot_most_confused(2)):
        assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(it.plot_top_losses(4).axes) == 4
    with pytest.raises(RunFolderError, match="tables .* still work"):
        Interpretation(Y_TRUE, PROBA, ["a", "b", "c"]).plot_top_losses()


def test_from_run_reads_the_folder(tmp_path):
    run = RunFolder.create(tmp_path)
    run.write_dataset({"classes": ["a", "b", "c"]})
    run.write_test_images(np.zeros((6, 4, 4)), Y_TRUE)
    run.model("m").write_predictions(Y_TRUE, PROBA)
    it = Interpretation.from_run(run, "m")
    assert it.name == "m" and it.images.shape == (6, 4, 4) and it.classes == ["a", "b", "c"]
    assert it.confusion_matrix().to_numpy().sum() == 6
    with pytest.raises(RunFolderError, match="no model 'x'"):
        Interpretation.from_run(run, "x")
