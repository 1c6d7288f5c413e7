"""Options every built-in dataset takes: ``limit`` works, anything else is refused by name."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
from typer.testing import CliRunner

from glyphlab.cli import app
from glyphlab.data import load_dataset, mnist
from glyphlab.data.registry import DATASETS, dataset_options, list_datasets
from glyphlab.errors import DataError


def test_every_builtin_dataset_takes_limit():
    list_datasets()
    missing = [name for name in DATASETS if "limit" not in dataset_options(name)]
    assert missing == []


def test_digits_limit_keeps_class_balance_and_the_fixed_split(digits):
    small = load_dataset("digits", limit=50)
    assert {k: len(v) for k, v in small.splits.items()} == {"train": 50, "test": 50}
    assert np.bincount(small["test"].labels).tolist() == [5] * 10
    full_test = {im.tobytes() for im in digits["test"].images}
    assert all(im.tobytes() in full_test for im in small["test"].images)  # a subset of the same 450
    np.testing.assert_array_equal(small["train"].images, load_dataset("digits", limit=50)["train"].images)


def test_unknown_option_is_refused_with_the_list():
    with pytest.raises(DataError, match=r"dataset 'digits' takes no option 'size'; its options are: limit"):
        load_dataset("digits", size=16)
    with pytest.raises(DataError, match=r"dataset 'mnist' takes no option 'lmit'; its options are: download, limit"):
        load_dataset("mnist", lmit=3)


def test_mnist_limit_on_a_small_fake_idx(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    sums = {}
    for stem, n in (("train-images-idx3-ubyte", 60), ("t10k-images-idx3-ubyte", 30)):
        arrays = {
            stem: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            stem.replace("images-idx3", "labels-idx1"): (np.arange(n) % 10).astype(np.uint8),
        }
        for name, arr in arrays.items():
            p = mnist.write_idx(tmp_path / "mnist" / (name + ".gz"), arr)
            sums[name] = hashlib.sha256(gzip.decompress(p.read_bytes())).hexdigest()
    monkeypatch.setattr(mnist, "CHECKSUMS", sums)
    ds = load_dataset("mnist", tmp_path, download=False, limit=20)
    assert len(ds["train"]) == 20 and len(ds["test"]) == 20 and ds.meta["limit"] == 20
    assert np.bincount(ds["train"].labels).tolist() == [2] * 10
    assert ds["train"].images.max() <= 1.0 and ds["train"].images.max() > 0.9


def test_cli_limit_example_of_run_help_works(tmp_path):
    r = CliRunner().invoke(
        app,
        ["run", "--models", "logreg", "--dataset-option", "limit=100", "--out", str(tmp_path / "run"), "--no-report"],
    )
    assert r.exit_code == 0, r.output
    assert "train=90" in r.output and "test=100" in r.output  # 100 per split; validation carved from train
    r = CliRunner().invoke(
        app, ["run", "--models", "logreg", "--dataset-option", "size=16", "--out", str(tmp_path / "r2"), "--no-report"]
    )
    assert r.exit_code == 2 and "takes no option 'size'" in r.output and "Traceback" not in r.output
