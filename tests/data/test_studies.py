"""The seed studies' datasets: glyphs36 (generated), emnist (fake IDX files), and the MNIST protocols
(skipped without real MNIST; generated files go to a temporary folder, never into the shared data)."""

from pathlib import Path

import numpy as np
import pytest

from glyphlab.data import load_dataset
from glyphlab.data.formats import read_csv785
from glyphlab.data.mnist import read_idx, write_idx
from glyphlab.data.splits import stratified_indices
from glyphlab.data.studies import (
    ALNUM_CLASSES,
    GLYPHS_SPLIT,
    GLYPHS_TOTAL,
    RESPLIT_SEED,
    RESPLIT_TEST,
    emnist_to_36,
    glyphs36_class_counts,
    glyphs36_splits,
    limit_indices,
    render_glyphs,
)
from glyphlab.errors import DataError

# ------------------------------------------------------------------------------------------ glyphs36


def test_glyphs36_class_counts_follow_the_report():
    counts = glyphs36_class_counts()
    assert counts.sum() == GLYPHS_TOTAL and len(counts) == 36
    assert counts[30] == 1  # the report's single-image class
    others = np.delete(counts, 30)
    assert others.min() == 102 and others.max() == 3291


def test_glyphs36_full_size_split_is_exact_and_stratified():
    counts = glyphs36_class_counts()
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(36), counts))
    parts = glyphs36_splits(labels)
    assert tuple(len(parts[k]) for k in ("train", "val", "test")) == GLYPHS_SPLIT
    assert len(np.unique(np.concatenate(list(parts.values())))) == GLYPHS_TOTAL
    assert 30 in labels[parts["train"]] and 30 not in labels[parts["test"]]
    share = np.bincount(labels[parts["test"]], minlength=36) / GLYPHS_SPLIT[2]
    assert np.abs(share - counts / GLYPHS_TOTAL).max() < 0.002


def test_glyphs36_loads_binary_56x56_deterministically():
    a = load_dataset("glyphs36", limit=40)
    b = load_dataset("glyphs36", limit=40)
    assert a.classes == ALNUM_CLASSES and a.num_classes == 36
    assert {k: len(v) for k, v in a.splits.items()} == {"train": 40, "val": 40, "test": 40}
    for k in a.splits:
        assert a[k].images.shape[1:] == (56, 56)
        assert set(np.unique(a[k].images)) <= {0.0, 1.0}
        assert np.array_equal(a[k].images, b[k].images) and np.array_equal(a[k].labels, b[k].labels)
    ink = a["train"].images.reshape(40, -1).mean(1)
    assert (ink > 0.02).all() and (ink < 0.6).all()
    assert len({img.tobytes() for img in a["train"].images}) == 40


def test_glyphs36_images_depend_only_on_their_position():
    labels = np.array([0, 11, 35, 7, 20])
    idx = np.array([5, 100, 2000, 30000, 12])
    full = render_glyphs(labels, idx)
    assert np.array_equal(render_glyphs(labels[[1, 3]], idx[[1, 3]]), full[[1, 3]])
    assert not np.array_equal(render_glyphs(labels, idx, seed=9), full)


def test_glyphs36_size_option_and_bad_options():
    ds = load_dataset("glyphs36", limit=5, size=32, fonts="bundled")
    assert ds.image_shape == (32, 32)
    with pytest.raises(DataError, match="limit"):
        load_dataset("glyphs36", limit=0)
    with pytest.raises(DataError, match="size"):
        load_dataset("glyphs36", size=8)


def test_limit_indices_is_stratified_and_skips_singletons():
    labels = np.array([0] * 50 + [1] * 50 + [2])
    idx = limit_indices(labels, len(labels), 10, 0)
    assert len(idx) == 10 and np.bincount(labels[idx]).tolist() == [5, 5]
    assert np.array_equal(limit_indices(labels, len(labels), None, 0), np.arange(len(labels)))


# -------------------------------------------------------------------------------------------- emnist


def _fake_emnist(folder: Path, n_train: int = 60, n_test: int = 30) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 5, 4:24] = 255  # stored column-major: a row in the file is a column of the glyph
        labels = (np.arange(n) % 62).astype(np.uint8)
        rng.shuffle(labels)
        write_idx(folder / f"emnist-byclass-{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"emnist-byclass-{split}-labels-idx1-ubyte.gz", labels)


def test_emnist_reads_merges_cases_resizes_and_binarises(tmp_path):
    _fake_emnist(tmp_path / "emnist")
    ds = load_dataset("emnist", tmp_path, download=False)
    assert ds.classes == ALNUM_CLASSES
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 60, "test": 30}
    img = ds["train"].images[0]
    assert img.shape == (56, 56) and set(np.unique(img)) <= {0.0, 1.0}
    cols = img.sum(axis=0)
    assert cols.max() >= 30 and (cols > 0).sum() <= 4  # the bar is now vertical (turned upright)
    assert ds["train"].labels.max() <= 35
    assert emnist_to_36(np.array([0, 9, 10, 35, 36, 61])).tolist() == [0, 9, 10, 35, 10, 35]
    small = load_dataset("emnist", tmp_path, download=False, limit=20, size=28)
    assert len(small["train"]) == 20 and small.image_shape == (28, 28)


def test_emnist_missing_files_are_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="emnist-byclass-train-images"):
        load_dataset("emnist", tmp_path, download=False)
    with pytest.raises(DataError, match="0..61"):
        emnist_to_36(np.array([62]))


# ------------------------------------------------------------------------------------- MNIST-based


def test_mnist_back_rand_writes_and_reads_the_report_files(mnist_data_dir):
    ds = load_dataset("mnist-back-rand", mnist_data_dir, limit=100, cache=False)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 100, "test": 100, "hidden": 100}
    assert ds["hidden"].labels is None and np.array_equal(ds["hidden"].images, ds["test"].images)
    folder = mnist_data_dir / "mnist-back-rand" / "limit-100"
    train_rows = np.loadtxt(folder / "train.csv", delimiter=",")
    assert train_rows.shape == (100, 785) and set(np.unique(train_rows[:, -1])) <= set(range(10))
    assert np.loadtxt(folder / "test.csv", delimiter=",").shape == (100, 784)
    raw = read_csv785(folder / "train.csv")  # as stored: transposed
    assert np.array_equal(raw.images.transpose(0, 2, 1), ds["train"].images)
    assert ds["train"].images.mean() > 0.4  # uniform noise background
    again = load_dataset("mnist-back-rand", mnist_data_dir, limit=100)  # through the parsed cache
    assert np.array_equal(again["train"].images, ds["train"].images)
    assert (mnist_data_dir / "mnist").is_symlink()  # generated files went to tmp, the shared MNIST is untouched


def test_mnist_back_rand_source_leaves_out_every_noisy_test_digit(mnist_data_dir):
    from glyphlab.data.studies import back_rand_indices

    source = load_dataset("mnist-back-rand-source", mnist_data_dir)
    assert (len(source["train"]), len(source["test"])) == (16_000, 4_000)
    mnist = load_dataset("mnist", mnist_data_dir)
    images = np.concatenate([mnist["train"].images, mnist["test"].images])
    labels = np.concatenate([mnist["train"].labels, mnist["test"].labels])
    train_idx, test_idx = back_rand_indices(labels)
    test_digits = {im.tobytes() for im in images[test_idx]}
    seen = [im.tobytes() for split in ("train", "test") for im in source[split].images]
    assert len(seen) == 20_000 and not test_digits.intersection(seen)
    # the clean originals of the 12,000 noisy training digits are all in the source
    assert {im.tobytes() for im in images[train_idx]} <= set(seen)
    # noisy_test: the same test digits on the competition's background, the training digits untouched
    noisy = load_dataset("mnist-back-rand-source", mnist_data_dir, noisy_test=True)
    assert np.array_equal(noisy["train"].images, source["train"].images)
    assert np.array_equal(noisy["test"].labels, source["test"].labels)
    t, c = noisy["test"].images, source["test"].images
    assert (t >= c).all() and float((t[c == 0] > 0).mean()) > 0.99 and abs(float(t[c == 0].mean()) - 0.5) < 0.01
    assert np.array_equal(load_dataset("mnist-back-rand-source", mnist_data_dir, noisy_test=True)["test"].images, t)


def test_mnist_70k_resplit_sizes(mnist_data_dir):
    ds = load_dataset("mnist-70k-resplit", mnist_data_dir, limit=50)
    assert len(ds["train"]) == 50 and len(ds["test"]) == 50 and ds.num_classes == 10
    # the full protocol, computed on the labels alone: 56,000 / 14,000, stratified
    labels = np.concatenate(
        [read_idx(next((mnist_data_dir / "mnist").glob(f"{s}-labels-idx1-ubyte*"))) for s in ("train", "t10k")]
    ).astype(np.int64)
    train, test = stratified_indices(labels, RESPLIT_TEST, RESPLIT_SEED)
    assert len(train) == 56_000 and len(test) == 14_000
    assert abs(np.bincount(labels[test])[1] - 1575) <= 2  # 7,877 ones of 70,000


def test_mnist_csv_pair(mnist_data_dir):
    ds = load_dataset("mnist-csv", mnist_data_dir, limit=60, cache=False)
    folder = mnist_data_dir / "mnist-csv" / "limit-60"
    assert (folder / "handwritten_digits_images.csv").is_file() and (folder / "handwritten_digits_labels.csv").is_file()
    assert len(ds["train"]) == 60 and len(ds["test"]) == 60
    test_images = read_idx(next((mnist_data_dir / "mnist").glob("t10k-images-idx3-ubyte*")))
    test_set = {img.tobytes() for img in test_images}  # every test image is one of MNIST's own test images
    assert all(np.rint(i * 255).astype(np.uint8).tobytes() in test_set for i in ds["test"].images)


def test_limit_indices_can_reserve_every_class():
    labels = np.array([0] * 500 + [1] * 5 + [2] * 3 + [3])
    idx = limit_indices(labels, len(labels), 20, 0, min_per_class=2)
    assert len(idx) == 20 and len(np.unique(idx)) == 20
    assert np.bincount(labels[idx], minlength=4)[:3].min() >= 2


def test_emnist_downloads_nists_zip_and_checks_its_digest(tmp_path, monkeypatch):
    """Against a local HTTP server: the zip is checked (pinned MD5, or a SHA-256 the user gives) before its four
    files are unpacked; a zip that does not match is refused and nothing is kept."""
    import functools
    import hashlib
    import http.server
    import threading
    import zipfile

    from glyphlab.data.studies import download

    _fake_emnist(tmp_path / "made")
    remote = tmp_path / "remote"
    remote.mkdir()
    with zipfile.ZipFile(remote / "gzip.zip", "w") as zf:
        for f in (tmp_path / "made").iterdir():
            zf.write(f, f"gzip/{f.name}")
    raw = (remote / "gzip.zip").read_bytes()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(remote)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(download, "EMNIST_URL", f"http://127.0.0.1:{srv.server_address[1]}/gzip.zip")
        monkeypatch.setattr(download, "EMNIST_ZIP_MD5", "0" * 32)  # not this zip's digest
        with pytest.raises(DataError, match="checksum mismatch .got md5"):
            load_dataset("emnist", tmp_path / "a", download=True)
        assert not list((tmp_path / "a").rglob("*.gz")) and not list((tmp_path / "a").rglob("gzip.zip"))
        monkeypatch.setattr(download, "EMNIST_ZIP_MD5", hashlib.md5(raw).hexdigest())
        ds = load_dataset("emnist", tmp_path / "a", download=True)
        assert len(ds["train"]) == 60 and ds.image_shape == (56, 56)
        # a SHA-256 given by the user is checked instead of the pinned MD5
        with pytest.raises(DataError, match="checksum mismatch .got sha256"):
            load_dataset("emnist", tmp_path / "b", download=True, sha256="f" * 64)
        ds = load_dataset("emnist", tmp_path / "c", download=True, sha256=hashlib.sha256(raw).hexdigest())
        assert len(ds["test"]) == 30
    finally:
        srv.shutdown()
        srv.server_close()
