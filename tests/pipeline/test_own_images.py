"""A person's own images: a folder -> glyphlab run -> evaluate / predict / serve give the very same labels.

The folders are made here from scikit-learn's digits: each 8x8 digit scaled up and set off-centre on a
48-64 px page, dark ink on white (as a scan) or light ink on dark (as a chalkboard photo).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from glyphlab.cli import app
from glyphlab.data.formats import image_folder_files
from glyphlab.serving.app import create_app

runner = CliRunner()
PER_CLASS = 12


def write_folder(root, split, classes, seed: int, dark_on_light: bool, per_class: int = PER_CLASS):
    """``root/<class>/<i>.png``: digits scaled 3-4x at a random place on a 48-64 px page."""
    rng = np.random.default_rng(seed)
    for c in range(len(classes)):
        (root / classes[c]).mkdir(parents=True)
        for i, idx in enumerate(np.flatnonzero(split.labels == c)[:per_class]):
            side, scale = int(rng.integers(48, 65)), int(rng.integers(3, 5))
            glyph = np.kron(split.images[idx], np.ones((scale, scale)))
            page = np.zeros((side, side))
            top, left = rng.integers(0, side - glyph.shape[0] + 1, size=2)
            page[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
            pixels = 255 * (1 - page) if dark_on_light else 25 + 230 * page
            Image.fromarray(pixels.round().astype(np.uint8)).save(root / classes[c] / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    base = tmp_path_factory.mktemp("own")
    train = write_folder(base / "train", digits["train"], digits.classes, seed=0, dark_on_light=True, per_class=40)
    run_dir = base / "run"
    r = runner.invoke(app, ["run", "--dataset", str(train), "--models", "logreg", "--out", str(run_dir), "--no-report"])
    assert r.exit_code == 0, r.output
    return base, run_dir


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-on-white", "light-on-dark"])
def test_evaluate_predict_and_serve_give_identical_labels(trained, digits, dark_on_light):
    base, run_dir = trained
    folder = write_folder(
        base / f"new-{dark_on_light}", digits["test"], digits.classes, seed=1, dark_on_light=dark_on_light
    )
    files = [f for f, _ in image_folder_files(folder)[1]]
    truth = np.array([lab for _, lab in image_folder_files(folder)[1]])

    r = runner.invoke(app, ["evaluate", str(run_dir), "--dataset", str(folder), "--out", str(base / "ev")])
    assert r.exit_code == 0, r.output
    with np.load(base / "ev" / "models" / "logreg" / "predictions.npz") as pred:
        evaluated, y_true = pred["y_pred"].tolist(), pred["y_true"]
    np.testing.assert_array_equal(y_true, truth)  # every file of the folder, in the reader's order

    model_dir = run_dir / "models" / "logreg" / "model"
    r = runner.invoke(app, ["predict", str(model_dir), str(folder), "--json"])
    assert r.exit_code == 0, r.output
    by_file = {p["file"]: p["label"] for p in json.loads(r.stdout)["predictions"]}
    predicted = [by_file[str(f)] for f in files]

    with TestClient(create_app(model_dir)) as client:
        served = []
        for f in files:
            resp = client.post("/prediction", files={"file": (f.name, f.read_bytes(), "image/png")})
            assert resp.status_code == 200, resp.text
            served.append(resp.json()["label"])

    assert evaluated == predicted == served
    accuracy = float(np.mean(np.array(evaluated) == truth))
    assert accuracy > 0.7, accuracy  # the same labels, and right ones: polarity and position were normalised


def test_the_manifest_and_the_run_record_the_preprocessing(trained):
    base, run_dir = trained
    manifest = json.loads((run_dir / "models" / "logreg" / "model" / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    assert pre["trained_on"] == "image files"
    assert pre["image_config"] == {
        "canvas": [28, 28],
        "polarity": "auto",
        "normalise_contrast": True,
        "crop_to_ink": True,
        "box": 20,
        "keep_aspect": True,
        "centre_by_mass": True,
        "resample": "auto",
        "clean": True,
        "binary": False,
        "stroke": 0.11,
        "whole_pixels": False,
        "version": 2,
    }
    dataset = json.loads((run_dir / "dataset.json").read_text())
    assert dataset["meta"]["preprocessing"] == pre
    assert dataset["meta"]["image_folder"]["inverted"] == 400  # all dark-on-white pages were inverted


def test_blank_file_is_no_ink_in_predict(trained, tmp_path):
    _, run_dir = trained
    Image.new("L", (60, 60), 255).save(tmp_path / "blank.png")
    r = runner.invoke(app, ["predict", str(run_dir / "models" / "logreg"), str(tmp_path / "blank.png"), "--json"])
    assert r.exit_code == 1
    (entry,) = json.loads(r.stdout)["predictions"]
    assert entry["no_ink"] is True and "label" not in entry and "no ink" in entry["error"]
    r = runner.invoke(app, ["predict", str(run_dir / "models" / "logreg"), str(tmp_path / "blank.png")])
    assert r.exit_code == 1 and "no ink" in r.output


def test_a_manifest_without_its_preprocessing_record_is_refused_in_one_line(trained, tmp_path):
    """Every model folder glyphlab saves records how images are prepared; one without it (no released glyphlab
    wrote such a folder) is refused, not served with a guessed preparation."""
    import shutil

    from glyphlab.errors import ModelFileError
    from glyphlab.serving.predictor import Predictor

    _, run_dir = trained
    old = tmp_path / "old"
    shutil.copytree(run_dir / "models" / "logreg" / "model", old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["preprocessing"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="records no image preprocessing"):
        Predictor(old)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "imgs" / "one.png")
    r = runner.invoke(app, ["predict", str(old), str(tmp_path / "imgs")])
    assert r.exit_code == 2 and "records no image preprocessing" in r.output and "Traceback" not in r.output


def test_photos_get_identical_labels_from_evaluate_predict_and_serve(trained, digits):
    """Phone photos (glyphlab.data.photos: paper, light, shadows, rulings, JPEG) of the test digits: the three
    ways in give the same label for every file, and mostly the right one."""
    from glyphlab.data.photos import write_photo_folder

    base, run_dir = trained
    test = digits["test"]
    keep = np.concatenate([np.flatnonzero(test.labels == c)[:6] for c in range(10)])
    glyphs = np.stack([np.kron(test.images[i], np.ones((4, 4))) for i in keep])
    folder = write_photo_folder(glyphs, test.labels[keep], base / "photos", seed=3, classes=digits.classes)
    files = [f for f, _ in image_folder_files(folder)[1]]
    truth = np.array([lab for _, lab in image_folder_files(folder)[1]])

    r = runner.invoke(app, ["evaluate", str(run_dir), "--dataset", str(folder), "--out", str(base / "ev-photos")])
    assert r.exit_code == 0, r.output
    with np.load(base / "ev-photos" / "models" / "logreg" / "predictions.npz") as pred:
        evaluated = pred["y_pred"].tolist()
    model_dir = run_dir / "models" / "logreg" / "model"
    r = runner.invoke(app, ["predict", str(model_dir), str(folder), "--json", "--show-inputs", str(base / "seen")])
    by_file = {p["file"]: p for p in json.loads(r.stdout)["predictions"]}
    refused = [f for f in files if "label" not in by_file[str(f)]]
    assert r.exit_code == (1 if refused else 0), r.output
    predicted = [by_file[str(f)].get("label", -1) for f in files]
    with TestClient(create_app(model_dir)) as client:
        served = []
        for f in files:
            resp = client.post("/prediction", files={"file": (f.name, f.read_bytes(), "image/jpeg")})
            assert resp.status_code in (200, 422), resp.text
            served.append(resp.json()["label"] if resp.status_code == 200 else -1)
    assert predicted == served
    assert [e for e, p in zip(evaluated, predicted) if p != -1] == [p for p in predicted if p != -1]
    assert len(refused) <= 2, refused
    assert float(np.mean(np.array(predicted) == truth)) > 0.6
    shown = by_file[str(files[0])]["input"]
    assert Image.open(shown).size == (28, 28) and (base / "seen" / "inputs.png").is_file()
