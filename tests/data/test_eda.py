import csv
import json

import numpy as np
from PIL import Image

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.eda import write_eda


def _ds(n_classes=4, n=60):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % n_classes
    return Dataset(
        name="toy",
        classes=[f"c{i}" for i in range(n_classes)],
        splits={
            "train": Split(rng.random((n, 12, 12), dtype=np.float32), labels),
            "test": Split(rng.random((20, 12, 12), dtype=np.float32), np.arange(20) % n_classes),
            "hidden": Split(rng.random((7, 12, 12), dtype=np.float32), None),
        },
    )


def test_write_eda(tmp_path):
    paths = write_eda(_ds(), tmp_path / "eda")
    names = {p.name for p in paths}
    assert names == {
        "class_counts.csv",
        "class_counts.png",
        "samples.png",
        "mean_images.png",
        "pixel_histogram.png",
        "summary.json",
    }
    for p in paths:
        assert p.exists() and p.parent == tmp_path / "eda"
        if p.suffix == ".png":
            with Image.open(p) as im:
                im.verify()
            with Image.open(p) as im:
                assert im.format == "PNG"
                assert 300 <= im.width <= 3000 and 200 <= im.height <= 3000, (p.name, im.size)
    rows = list(csv.reader(open(tmp_path / "eda" / "class_counts.csv")))
    assert rows[0] == ["class", "train", "test", "total"]
    assert rows[1] == ["c0", "15", "5", "20"]
    assert json.loads((tmp_path / "eda" / "summary.json").read_text())["split_sizes"]["hidden"] == 7


def test_write_eda_unlabeled_only_and_many_classes(tmp_path):
    ds = Dataset("u", ["a", "b"], {"test": Split(np.zeros((3, 8, 8), np.float32), None)})
    names = {p.name for p in write_eda(ds, tmp_path / "u")}
    assert names == {"class_counts.csv", "pixel_histogram.png", "summary.json"}
    paths = write_eda(_ds(n_classes=62, n=200), tmp_path / "many")
    for p in paths:
        if p.suffix == ".png":
            with Image.open(p) as im:
                assert im.width <= 3000 and im.height <= 5000
