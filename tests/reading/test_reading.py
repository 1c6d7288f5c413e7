"""glyphlab read: digits drawn with PIL strokes, read by a small model trained on such digits (no MNIST)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from reading_helpers import line_ink, page, png, train_drawn_model
from typer.testing import CliRunner

from glyphlab.data.cleanup import find_line
from glyphlab.data.images import WORK_SIDE, NoInkError
from glyphlab.reading import SeveralLinesError, edit_ops, read_one
from glyphlab.serving.predictor import Predictor


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_drawn_model(tmp_path_factory.mktemp("reading") / "drawn")


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor(model_dir)


@pytest.mark.parametrize("text,gap", [("77", -10), ("44", -12), ("29", -12), ("0123456789", 12)])
def test_touching_pairs_are_split(predictor, text, gap):
    im = page([line_ink(text, gap)])
    if gap < 0:  # the neighbours really touch: fewer components than characters
        assert len(find_line(np.asarray(im, np.float32) / 255).boxes) < len(text)
    r = read_one(predictor, im)
    assert r.text == text
    assert len(r.chars) == len(text) and all(0.5 < c.probability <= 1 for c in r.chars)
    lefts = [c.box[1] for c in r.chars]
    assert lefts == sorted(lefts)  # boxes left to right, in the picture's pixels
    assert all(0 <= c.box[0] < c.box[2] <= im.height and 0 <= c.box[1] < c.box[3] <= im.width for c in r.chars)


def test_boxes_are_in_the_pictures_own_pixels(predictor):
    """A picture larger than the work side (shrunk before its ink is looked for) gets its boxes in its own
    pixels: three times the boxes of the same picture three times smaller."""
    small = page([line_ink("2024", 12)])
    big = small.resize((3 * small.width, 3 * small.height), Image.Resampling.BICUBIC)
    assert max(big.size) > WORK_SIDE  # shrunk by to_pixels
    a, b = read_one(predictor, small), read_one(predictor, big)
    assert a.text == b.text == "2024"
    for c, d in zip(a.chars, b.chars):
        assert all(abs(3 * u - v) <= 9 for u, v in zip(c.box, d.box)), (c.box, d.box)


def test_broken_five_stays_one_character(predictor):
    """The 5's bar is drawn apart from its body (two components), beside a 1 on either side."""
    im = page([line_ink("151", 14)])
    assert len(find_line(np.asarray(im, np.float32) / 255).boxes) == 4  # 1, the 5's bar, its body, 1
    assert read_one(predictor, im).text == "151"


def test_pattern_fixes_a_misread(predictor):
    """Two digits pressed deep into each other are misread (as one); a postcode-like pattern (or the length)
    reads the two. (Pressed 16 px into each other, as this test had them, they are now read right unconstrained.)"""
    im = page([line_ink("09", -22)])
    free = read_one(predictor, im)
    assert len(free.text) != 2  # the misread the constraint has to fix
    fixed = read_one(predictor, im, pattern=r"\d{2}")
    assert fixed.text == "09" and fixed.lines[0].matches and not fixed.note
    assert read_one(predictor, im, length=2).text == "09"
    none = read_one(predictor, im, pattern=r"[A-Z]+")  # nothing this model reads satisfies it
    # the best reading is given (a constrained reading classifies every candidate with its shifted copies, the
    # free one those the verifier doubts only once, so it may differ from the free one)
    assert not none.lines[0].matches and "no reading satisfies" in none.note and none.text.isdigit()
    assert read_one(predictor, page([line_ink("707", 12)]), charset="0-6").text.count("7") == 0


def test_blank_and_two_lines_say_so(predictor):
    blank = Image.new("RGB", (300, 120), (240, 236, 220))
    with pytest.raises(NoInkError, match="no ink: the image is blank"):
        read_one(predictor, blank)
    two = page([line_ink("12"), line_ink("34")])
    r = read_one(predictor, two)
    assert [line.text for line in r.lines] == ["12", "34"] and r.text == "12\n34"
    with pytest.raises(SeveralLinesError, match="several lines: the picture holds 2 lines"):
        read_one(predictor, two, lines="one")


def test_ruling_cut_off_at_the_edge_is_no_line(predictor):
    """A squared page's line cut off by the crop (a thin bar from the picture's top edge, on rows of its own)
    is not a second line of writing read as a "1"."""
    im = page([line_ink("2024", 12)])
    px = np.asarray(im).copy()
    px[0:24, 70:72] = (60, 70, 110)  # the bar ends above the digits' rows (the page's margin is 30 px)
    im = Image.fromarray(px)
    found = find_line(np.asarray(im, np.float32) / 255)
    assert any(t == 0 and r - l <= 4 for t, l, b, r in found.boxes)  # the bar is ink the line finder kept
    r = read_one(predictor, im, lines="one")
    assert r.text == "2024" and len(r.lines) == 1


def test_a_wide_character_cut_into_many_pieces_can_be_read_whole():
    """A wide component (a 5 with a long bar) given more cuts than :data:`MAX_PIECES` pieces stays a candidate
    of the lattice as a whole; the best path must be able to reach it (the beam once stopped MAX_PIECES nodes on,
    and read such a 5 as two or three characters)."""
    from glyphlab.reading.costs import MAX_PIECES
    from glyphlab.reading.decode import _best_paths

    n = MAX_PIECES + 1
    segs = {(i, i + 1): (1.0, [(-2.0, 1)]) for i in range(n)}  # each piece alone: a doubtful "1", cut
    segs[(0, n)] = (0.5, [(-0.1, 5)])  # the whole component: a sure "5"
    paths = _best_paths(n, segs, list("0123456789"), None, None, beam=8)
    assert paths[0][1] == [(0, n, 5)]


def test_cli_api_and_server_read_the_same(model_dir, tmp_path):
    from fastapi.testclient import TestClient

    import glyphlab as gl
    from glyphlab.cli import app
    from glyphlab.serving.app import create_app

    texts = {"a.png": ("2024", [12, -6, 12]), "b.png": ("151", 14), "c.png": ("09", -22)}
    for name, (text, gaps) in texts.items():
        page([line_ink(text, gaps)]).save(tmp_path / name)
    (tmp_path / "labels.csv").write_text("file,text\n" + "".join(f"{n},{t}\n" for n, (t, _) in texts.items()))
    files = sorted(tmp_path.glob("*.png"))

    api = {r.source: r.text for r in gl.read(model_dir, tmp_path)}
    result = CliRunner().invoke(
        app,
        [
            "read",
            str(model_dir),
            *map(str, files),
            "--json",
            "--labels",
            str(tmp_path / "labels.csv"),
            "--report",
            str(tmp_path / "report"),
        ],
    )
    assert result.exit_code == 0, result.output
    cli = {r["source"]: r["text"] for r in json.loads(result.stdout)["readings"]}
    client = TestClient(create_app(model_dir))
    server = {}
    for f in files:
        resp = client.post("/reading", files={"file": (f.name, f.read_bytes(), "image/png")})
        assert resp.status_code == 200, resp.text
        server[str(f)] = resp.json()["text"]
    assert api == cli == server and set(api) == {str(f) for f in files}
    assert api[str(tmp_path / "a.png")] == "2024"
    # --labels: exact-string accuracy, CER and the files; c.png is misread (two edits)
    assert re.search(
        r"3 labelled pictures: exact-string accuracy 0\.667, character error rate 2\d\.\d\d %", result.stderr
    )
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"readings.csv", "confused.csv", "misread.html"}
    # the same constraint through each door
    resp = client.post(
        "/reading",
        params={"pattern": r"\d{2}"},
        content=(tmp_path / "c.png").read_bytes(),
        headers={"content-type": "image/png"},
    )
    assert resp.json()["text"] == "09" == read_one(Predictor(model_dir), tmp_path / "c.png", pattern=r"\d{2}").text
    pixels = np.pad(line_ink("2024", [12, -6, 12]), 10)  # JSON pixels, ink = 1, as /prediction takes them
    assert client.post("/reading", json={"pixels": pixels.round(3).tolist()}).json()["text"] == "2024"
    blank = client.post("/reading", files={"file": ("b.png", png(Image.new("RGB", (200, 80), "white")), "image/png")})
    assert blank.status_code == 422 and blank.json()["detail"][0]["type"] == "no_ink"
    bad = client.post(
        "/reading",
        params={"pattern": "("},
        content=(tmp_path / "a.png").read_bytes(),
        headers={"content-type": "image/png"},
    )
    assert bad.status_code == 400 and "not a regular expression" in bad.json()["detail"]


def test_reading_explains_each_character(model_dir):
    """/reading?explain=true: each character has the explanation of the very input it was read from (its label
    and runner-up as the targets), the shape of the model's input."""
    from fastapi.testclient import TestClient

    from glyphlab.serving.app import create_app

    client = TestClient(create_app(model_dir))
    body = png(page([line_ink("2024", [12, -6, 12])]))
    plain = client.post("/reading", content=body, headers={"content-type": "image/png"}).json()
    resp = client.post("/reading", params={"explain": "true"}, content=body, headers={"content-type": "image/png"})
    assert resp.status_code == 200, resp.text
    d = resp.json()
    assert d["text"] == plain["text"] == "2024" and all("explanation" not in c for c in plain["lines"][0]["chars"])
    for ch in d["lines"][0]["chars"]:
        ex = ch["explanation"]
        assert ex["class_name"] == ch["label"] and ex["runner_up"]["class_name"] == ch["runner_up"]
        assert np.asarray(ex["input"]).shape == np.asarray(ex["contrast"]).shape == (28, 28)
        assert np.abs(np.asarray(ex["contrast"])).max() > 0


def test_edit_ops():
    assert edit_ops("306847", "376847") == [("3", "3"), ("0", "7"), ("6", "6"), ("8", "8"), ("4", "4"), ("7", "7")]
    assert sum(a != b for a, b in edit_ops("1234", "134")) == 1


def test_string_confidence_weighs_the_other_readings():
    """A line's confidence is the share of the kept paths' evidence that reads its text: other cuts of the same
    text add to it, a different text scoring nearly as well takes from it."""
    from glyphlab.reading.costs import POSTERIOR_SCALE
    from glyphlab.reading.decode import _posterior

    classes = [str(d) for d in range(10)]
    one = (-1.0, [(0, 1, 2), (1, 2, 1)])  # "21" in two characters
    assert _posterior([one], classes) == pytest.approx(1.0)
    other_cut = (-1.5, [(0, 1, 2), (1, 3, 1)])  # "21" again, cut elsewhere
    assert _posterior([one, other_cut], classes) == pytest.approx(1.0)
    merged = (-1.0 - 0.4, [(0, 2, 2)])  # "2": the pair read as one character, scoring a little lower
    expected = 1 / (1 + np.exp(-POSTERIOR_SCALE * 0.4))
    assert _posterior([one, merged], classes) == pytest.approx(expected)
    assert _posterior([one, other_cut, merged], classes) > _posterior([one, merged], classes)
    assert _posterior([one, (-1.0, [(0, 2, 7)])], classes) == pytest.approx(0.5)
