import numpy as np
import pytest
from PIL import Image

from glyphlab.data import formats
from glyphlab.data.dataset import Split
from glyphlab.errors import DataError


def _split(n=12, side=28, labeled=True, seed=0):
    rng = np.random.default_rng(seed)
    images = (rng.integers(0, 256, (n, side, side)) / 255.0).astype(np.float32)
    labels = (np.arange(n) % 10).astype(np.int64) if labeled else None
    return Split(images, labels)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.images, b.images)
    if a.labels is None:
        assert b.labels is None
    else:
        np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_csv785_round_trip(tmp_path, header, transposed):
    sp = _split()
    p = formats.write_csv785(tmp_path / "a.csv", sp, header=header, transposed=transposed)
    first = p.read_text().splitlines()[0 if not header else 1].split(",")
    assert len(first) == 785 and first[-1] == "0"
    _assert_same(sp, formats.read_csv785(p, transposed=transposed))
    if transposed:  # read without the option: each image comes back transposed
        np.testing.assert_array_equal(formats.read_csv785(p).images, sp.images.transpose(0, 2, 1))
    # unlabeled test file: 784 columns
    u = _split(labeled=False, seed=1)
    p = formats.write_csv785(tmp_path / "u.csv", u, header=header, transposed=transposed)
    back = formats.read_csv785(p, transposed=transposed)
    assert back.labels is None
    _assert_same(u, back)


def test_csv785_label_first(tmp_path):
    sp = _split()
    p = formats.write_csv785(tmp_path / "k.csv", sp, header=True, label_column=0)
    assert p.read_text().startswith("label,pixel0")
    _assert_same(sp, formats.read_csv785(p, label_column=0))


def _write_rows(path, rows, header=None):
    lines = ([header] if header else []) + [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(n=4, side=3, label=True):
    return [[(i * 7 + j) % 256 for j in range(side * side)] + ([i % 3] if label else []) for i in range(n)]


def test_csv_errors(tmp_path):
    rows = _rows()
    rows[2] = rows[2][:-2]
    p = _write_rows(tmp_path / "cols.csv", rows)
    with pytest.raises(DataError, match=r"cols\.csv: line 3: expected 10 columns \(as on line 1\), got 8"):
        formats.read_csv785(p)

    rows = _rows()
    rows[1][4] = "abc"
    p = _write_rows(tmp_path / "nan.csv", rows, header=",".join(f"p{i}" for i in range(9)) + ",label")
    with pytest.raises(DataError, match=r"nan\.csv: line 3, column 5: non-numeric cell 'abc'"):
        formats.read_csv785(p)

    rows = _rows()
    rows[3][0] = 300
    p = _write_rows(tmp_path / "range.csv", rows)
    with pytest.raises(DataError, match=r"range\.csv: line 4, column 1: pixel value 300 fits no pixel range"):
        formats.read_csv785(p)

    rows = _rows()
    rows[0][-1] = 12
    p = _write_rows(tmp_path / "label.csv", rows)
    with pytest.raises(DataError, match=r"label\.csv: line 1, column 10: label 12 is outside the class list"):
        formats.read_csv785(p, classes=list("abc"))
    rows[0][-1] = 1.5
    p = _write_rows(tmp_path / "frac.csv", rows)
    with pytest.raises(DataError, match=r"frac\.csv: line 1, column 10: label 1.5 is not a whole number"):
        formats.read_csv785(p)

    rows = _rows(label=False)
    rows[0] = rows[0][:-1] + ["nan"]
    p = _write_rows(tmp_path / "inf.csv", rows)
    with pytest.raises(DataError, match=r"inf\.csv: line 1, column 9: value nan is not a finite number"):
        formats.read_csv785(p)

    p = _write_rows(tmp_path / "shape.csv", [r[:7] for r in _rows()])
    with pytest.raises(DataError, match=r"shape\.csv: .*not a square image"):
        formats.read_csv785(p)

    (tmp_path / "blank.csv").write_text("1,2,3,4\n\n5,6,7,8\n")
    with pytest.raises(DataError, match=r"blank\.csv: line 2: empty line"):
        formats.read_csv785(tmp_path / "blank.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        formats.read_csv785(tmp_path / "empty.csv")
    with pytest.raises(DataError, match=r"missing\.csv: file not found"):
        formats.read_csv785(tmp_path / "missing.csv")


def test_image_csv_pair(tmp_path):
    sp = _split()
    for header in (False, True):
        ip, lp = tmp_path / f"x{header}.csv", tmp_path / f"y{header}.csv"
        formats.write_image_csv_pair(ip, lp, sp, header=header)
        _assert_same(sp, formats.read_image_csv_pair(ip, lp))
    lp = tmp_path / "short.csv"
    lp.write_text("label\n" + "\n".join(["1"] * 5) + "\n")
    with pytest.raises(DataError, match=r"short\.csv has 5 labels but .*xFalse\.csv has 12 images"):
        formats.read_image_csv_pair(tmp_path / "xFalse.csv", lp)
    lp.write_text("label\n1\n2\n-1\n" + "\n".join(["1"] * 9) + "\n")
    with pytest.raises(DataError, match=r"short\.csv: line 4: label -1 is outside the class list"):
        formats.read_image_csv_pair(tmp_path / "xFalse.csv", lp)
    lp.write_text("1\n2\nseven\n" + "\n".join(["1"] * 9) + "\n")
    with pytest.raises(DataError, match=r"short\.csv: line 3, column 1: non-numeric cell 'seven'"):
        formats.read_image_csv_pair(tmp_path / "xFalse.csv", lp)


@pytest.mark.parametrize("transposed", [False, True])
def test_amat_round_trip(tmp_path, transposed):
    rng = np.random.default_rng(3)
    sp = Split(rng.random((6, 28, 28), dtype=np.float32), np.arange(6) % 10)
    sp.images[:, :5] = 0.0
    p = formats.write_amat(tmp_path / "a.amat", sp, transposed=transposed)
    assert len(p.read_text().splitlines()[0].split()) == 785
    _assert_same(sp, formats.read_amat(p, transposed=transposed))
    u = Split(sp.images, None)
    _assert_same(u, formats.read_amat(formats.write_amat(tmp_path / "u.amat", u), labeled=False))


def test_amat_errors(tmp_path):
    good = " ".join(["0.5"] * 4) + " 1"
    (tmp_path / "r.amat").write_text(f"{good}\n{good}\n0.5 1.5 0.5 0.5 2\n")
    with pytest.raises(
        DataError, match=r"r\.amat: line 3, column 2: pixel value 1.5 fits no pixel range: it is above 1"
    ):
        formats.read_amat(tmp_path / "r.amat")
    (tmp_path / "c.amat").write_text(f"{good}\n0.5 0.5 0.5 1\n")
    with pytest.raises(DataError, match=r"c\.amat: line 2: expected 5 columns"):
        formats.read_amat(tmp_path / "c.amat")
    (tmp_path / "x.amat").write_text(f"{good}\n0.5 0.5 x 0.5 1\n")
    with pytest.raises(DataError, match=r"x\.amat: line 2, column 3: non-numeric cell 'x'"):
        formats.read_amat(tmp_path / "x.amat")


def _glyph(size=28):
    img = np.zeros((size, size), dtype=np.float32)
    img[size // 4 : 3 * size // 4, size // 2 - size // 10 : size // 2 + size // 10] = 1.0
    return img


def test_image_folder_round_trip(tmp_path):
    sp = _split(n=9, seed=5)
    sp.images[:, 0, :] = 0  # dark border, so the reader does not invert
    classes = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    sp = Split(sp.images, np.array([0, 1, 2, 0, 1, 2, 0, 1, 2]))
    formats.write_image_folder(tmp_path / "f", sp, classes[:3])
    ds = formats.read_image_folder(tmp_path / "f", preprocess="as-given")
    assert ds.classes == sorted(classes[:3])  # sub-folder names, sorted
    tr = ds["train"]
    assert tr.images.shape == (9, 28, 28)
    # map back: folder order is one, two, zero
    for name in classes[:3]:
        orig = sp.images[sp.labels == classes.index(name)]
        got = tr.images[tr.labels == ds.classes.index(name)]
        np.testing.assert_array_equal(orig, got)
    # dark ink on white paper reads back the same
    formats.write_image_folder(tmp_path / "g", sp, classes[:3], ink_dark=True)
    ds2 = formats.read_image_folder(tmp_path / "g", preprocess="as-given")
    np.testing.assert_allclose(ds2["train"].images, tr.images, atol=1e-6)
    assert ds2.meta["image_folder"]["inverted"] == 9


def test_image_folder_modes_and_sizes(tmp_path):
    g = _glyph(64)
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    dark_on_white = ((1 - g) * 255).astype(np.uint8)
    Image.fromarray(dark_on_white).convert("RGB").save(tmp_path / "A" / "rgb.jpg", quality=95)
    Image.fromarray(dark_on_white).save(tmp_path / "A" / "gray.bmp")
    Image.fromarray((g * 255).astype(np.uint8)).convert("P").save(tmp_path / "B" / "pal.gif")
    rgba = np.zeros((40, 80, 4), dtype=np.uint8)  # black strokes on transparent, wide image
    rgba[10:30, 35:45, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "B" / "alpha.png")
    Image.fromarray((g * 65535).astype(np.uint16)).save(tmp_path / "B" / "deep.png")
    (tmp_path / "B" / "notes.txt").write_text("not an image")
    ds = formats.read_image_folder(tmp_path, size=(16, 16))
    assert ds.classes == ["A", "B"]
    imgs = ds["train"].images
    assert imgs.shape == (5, 16, 16) and imgs.dtype == np.float32
    assert ds.meta["image_folder"]["ignored_files"] == ["B/notes.txt"]
    for img in imgs:  # ink is bright in the middle, background dark at the border
        assert img[8, 8] > 0.6, img
        assert img[0, 0] < 0.1
    # the 20x10 stroke of the wide RGBA image was cropped and fitted into the 11 px box keeping its aspect
    alpha = imgs[list(ds["train"].labels).index(1)]  # B/alpha.png sorts first
    rows, cols = np.flatnonzero((alpha > 0.5).any(axis=1)), np.flatnonzero((alpha > 0.5).any(axis=0))
    assert 10 <= len(rows) <= 12 and 4 <= len(cols) <= 7  # the centring shift blurs the edges by a pixel
    assert ds.meta["preprocessing"]["image_config"]["box"] == 11
    # as given, the wide image is only scaled (padded to square): the stroke keeps its place and aspect
    given = formats.read_image_folder(tmp_path, size=16, preprocess="as-given")["train"].images
    alpha = given[list(ds["train"].labels).index(1)]
    assert alpha[:4].max() < 0.1 and alpha[8, 8] > 0.6


def test_image_folder_errors(tmp_path):
    (tmp_path / "A").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "A" / "ok.png")
    (tmp_path / "A" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"bad\.png: (not a readable image|the image is truncated or damaged)"):
        formats.read_image_folder(tmp_path)
    (tmp_path / "A" / "bad.png").unlink()
    good = (tmp_path / "A" / "ok.png").read_bytes()
    (tmp_path / "A" / "trunc.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"trunc\.png"):
        formats.read_image_folder(tmp_path)
    (tmp_path / "A" / "trunc.png").unlink()
    (tmp_path / "B").mkdir()
    with pytest.raises(DataError, match=r"class folder 'B' has no image files"):
        formats.read_image_folder(tmp_path)
    with pytest.raises(DataError, match="no class sub-folders"):
        formats.read_image_folder(tmp_path / "A")


def test_image_folder_bomb_guard(tmp_path, monkeypatch):
    (tmp_path / "A").mkdir()
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "A" / "big.png")
    monkeypatch.setattr(formats, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(
        DataError,
        match=r"big\.png: the image is 100x100 = 10,000 pixels, more than the limit of 5,000 \(a possible decompression bomb\)",
    ):
        formats.read_image_folder(tmp_path)


def test_load_path(tmp_path):
    sp, test = _split(), _split(n=5, labeled=False, seed=2)
    formats.write_csv785(tmp_path / "train.csv", sp, transposed=True)
    formats.write_csv785(tmp_path / "test.csv", test, transposed=True)
    ds = formats.load_path(tmp_path / "train.csv", test_path=tmp_path / "test.csv", transposed=True)
    assert ds.name == "train" and ds.classes == [str(i) for i in range(10)]
    _assert_same(sp, ds["train"])
    _assert_same(test, ds["test"])
    ds = formats.load_path(formats.write_amat(tmp_path / "r.amat", sp))
    _assert_same(sp, ds["train"])
    formats.write_image_csv_pair(tmp_path / "x.csv", tmp_path / "y.csv", sp)
    _assert_same(sp, formats.load_path(tmp_path / "x.csv", labels_path=tmp_path / "y.csv")["train"])
    formats.write_image_folder(tmp_path / "folder", sp, [str(i) for i in range(10)])
    ds = formats.load_path(tmp_path / "folder", size=(14, 14))
    assert ds["train"].images.shape == (12, 14, 14) and ds.classes == [str(i) for i in range(10)]
    with pytest.raises(DataError, match=r"unknown data file type '\.npz'"):
        (tmp_path / "a.npz").write_bytes(b"")
        formats.load_path(tmp_path / "a.npz")
    with pytest.raises(DataError, match="no such file or folder"):
        formats.load_path(tmp_path / "nope")


# ------------------------------------------------------------------------------------ pixel ranges


def test_pixel_range_is_detected_from_the_data(tmp_path):
    """A [0, 1] CSV (seed 002's kind) is used as read; a 0-255 one is divided by 255; both say which."""
    sp = _split()
    unit = formats.write_amat(tmp_path / "unit.amat", sp).read_text().replace(" ", ",")
    (tmp_path / "unit.csv").write_text(unit)
    split, rng = formats.read_csv785_range(tmp_path / "unit.csv")
    np.testing.assert_allclose(split.images, sp.images, atol=1e-6)  # not divided by 255 a second time
    assert split.images.max() > 0.99 and rng.pixel_max == 1 and rng.detected
    split, rng = formats.read_csv785_range(formats.write_csv785(tmp_path / "bytes.csv", sp))
    _assert_same(sp, split)
    assert rng.pixel_max == 255 and rng.detected and "divided by 255 (detected)" in rng.describe()
    # binary 0/1 pixels are [0, 1]; an explicit pixel_max is used and checked
    split, rng = formats.read_csv785_range(_write_rows(tmp_path / "bin.csv", [[v % 2 for v in r] for r in _rows()]))
    assert rng.pixel_max == 1 and split.images.max() == 1
    split, rng = formats.read_csv785_range(tmp_path / "bytes.csv", pixel_max=1000)
    assert not rng.detected and split.images.max() <= 0.255
    ds = formats.load_path(tmp_path / "unit.csv", test_path=tmp_path / "bytes.csv")
    assert ds.meta["pixel_range"]["train"]["pixel_max"] == 1 and ds.meta["pixel_range"]["test"]["pixel_max"] == 255


@pytest.mark.parametrize(
    "cell, line, column, match",
    [
        ("37.2", 3, 2, r"pixel value 37.2 fits no pixel range: it is not a whole number 0-255"),
        ("-1", 2, 5, r"pixel value -1 is negative"),
        ("256", 4, 9, r"pixel value 256 fits no pixel range"),
    ],
)
def test_ambiguous_pixel_range_is_an_error_naming_the_cell(tmp_path, cell, line, column, match):
    rows = _rows()
    rows[line - 1][column - 1] = cell
    p = _write_rows(tmp_path / "odd.csv", rows)
    with pytest.raises(DataError, match=rf"odd\.csv: line {line}, column {column}: {match}.*pixel_max=MAX"):
        formats.read_csv785(p)
    # floats in [0, 1] with one value above 1: the offender is that value, not the first fraction
    floats = [[round(v / 300, 4) for v in r[:-1]] + [r[-1]] for r in _rows()]
    floats[2][4] = 37.2
    with pytest.raises(DataError, match=r"line 3, column 5: pixel value 37.2 fits no pixel range: it is above 1"):
        formats.read_csv785(_write_rows(tmp_path / "f.csv", floats))


def test_the_run_records_and_prints_the_pixel_range(tmp_path):
    import json

    from rich.console import Console

    from glyphlab.console import ConsoleObserver
    from glyphlab.pipeline.run import RunConfig, run

    sp = Split(np.tile(_split(n=10).images, (4, 1, 1)), np.arange(40) % 10)
    unit = formats.write_amat(tmp_path / "unit.amat", sp).read_text().replace(" ", ",")
    (tmp_path / "unit.csv").write_text(unit)
    console = Console(record=True, width=200)
    out = run(
        RunConfig(dataset=str(tmp_path / "unit.csv"), models=["logreg"]),
        tmp_path / "run",
        report=False,
        observers=[ConsoleObserver(console)],
    )
    meta = json.loads((out / "dataset.json").read_text())["meta"]
    assert meta["pixel_range"]["train"] == {
        "pixel_max": 1.0,
        "detected": True,
        "text": "pixels in [0, 1], used as read (detected)",
    }
    header = console.export_text().splitlines()[:2]
    assert "pixels in [0, 1], used as read (detected)" in " ".join(header)


# ------------------------------------------------------------------------------------ options, limit


def test_unknown_options_are_refused_by_name(tmp_path):
    sp = _split()
    formats.write_csv785(tmp_path / "a.csv", sp)
    with pytest.raises(DataError, match=r"a\.csv: CSV files take\(s\) no option 'size'; the options are: limit, "):
        formats.load_path(tmp_path / "a.csv", size=16)
    formats.write_image_folder(tmp_path / "f", sp, [str(i) for i in range(10)])
    with pytest.raises(DataError, match=r"image folders take\(s\) no option 'pixel_max'.*limit, preprocess, size"):
        formats.load_path(tmp_path / "f", pixel_max=1)


def test_limit_on_an_image_folder_and_a_csv_is_stratified_and_seeded(tmp_path):
    sp = Split(np.tile(_split(n=10).images, (6, 1, 1)), np.repeat(np.arange(3), 20))
    formats.write_image_folder(tmp_path / "f", sp, ["a", "b", "c"])
    ds = formats.load_path(tmp_path / "f", limit=12, preprocess="as-given")
    assert np.bincount(ds["train"].labels).tolist() == [4, 4, 4] and ds.meta["image_folder"]["limit"] == 12
    again = formats.load_path(tmp_path / "f", limit=12, preprocess="as-given")
    np.testing.assert_array_equal(ds["train"].images, again["train"].images)
    formats.write_csv785(tmp_path / "a.csv", sp)
    csv = formats.load_path(tmp_path / "a.csv", limit=9)
    assert np.bincount(csv["train"].labels).tolist() == [3, 3, 3] and csv.meta["read_options"]["limit"] == "9"
    with pytest.raises(DataError, match="limit must be a positive whole number"):
        formats.load_path(tmp_path / "f", limit=0)
