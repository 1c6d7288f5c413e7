"""POST /explanation (same input rules as /prediction, one image, bounded cost) and `glyphlab explain`."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import bomb_png, digit_png
from typer.testing import CliRunner

from glyphlab.cli import app as cli
from glyphlab.evaluation.attributions import IG_STEPS, has_captum
from glyphlab.serving.app import ServeSettings, create_app

needs_captum = pytest.mark.skipif(not has_captum(), reason="ig needs pip install 'glyphlab[explain]'")


@pytest.fixture(scope="module")
def cnn_client(cnn_dir):
    with TestClient(create_app(cnn_dir, ServeSettings(max_bytes=200_000, max_pixels=1_000_000))) as c:
        yield c


@pytest.fixture(scope="module")
def logreg_client(logreg_dir):
    with TestClient(create_app(logreg_dir, ServeSettings(max_bytes=200_000))) as c:
        yield c


@needs_captum
def test_an_upload_is_explained_for_the_predicted_class_and_the_runner_up(cnn_client, digits):
    img = digits.splits["test"].images[0]
    r = cnn_client.post("/explanation", files={"file": ("d.png", digit_png(img), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "ig" and body["params"]["steps"] == IG_STEPS
    for key in ("input", "attribution", "runner_up_attribution", "contrast"):
        assert np.asarray(body[key]).shape == (8, 8), key
    assert body["label"] != body["runner_up"]["label"]
    assert body["probability"] >= body["runner_up"]["probability"]
    pred = cnn_client.post("/prediction", files={"file": ("d.png", digit_png(img), "image/png")}).json()
    assert pred["label"] == body["label"]  # the same image path, the same answer
    again = cnn_client.post("/explanation", files={"file": ("d.png", digit_png(img), "image/png")}).json()
    assert again["attribution"] == body["attribution"]
    # JSON pixels and the other methods
    r = cnn_client.post("/explanation?method=gradcam", json={"pixels": img.tolist()})
    assert r.status_code == 200 and r.json()["method"] == "gradcam", r.text
    r = cnn_client.post("/explanation?method=occlusion", content=digit_png(img), headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["method"] == "occlusion", r.text


@pytest.mark.parametrize(
    "request_kwargs, url, status",
    [
        ({"content": b"not an image", "headers": {"content-type": "image/png"}}, "/explanation", 400),
        ({"content": bomb_png(), "headers": {"content-type": "image/png"}}, "/explanation", 400),
        ({"content": b"x" * 300_000, "headers": {"content-type": "image/png"}}, "/explanation", 413),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, "/explanation", 415),
        ({"json": {"images": [[[0.5]], [[0.5]]]}}, "/explanation", 422),  # one image per explanation
        ({"json": {"pixels": [[2.0]]}}, "/explanation", 422),
        ({"json": {"pixels": [[0.5]]}}, "/explanation?steps=1000", 422),  # IG steps are capped
        ({"json": {"pixels": [[0.5]]}}, "/explanation?method=shap", 422),
        ({"json": {"pixels": [[0.0, 1.0], [0.0, 0.0]]}}, "/explanation?method=ig", 400),  # a linear model is no network
        ({"files": {"other": ("d.png", b"", "image/png")}}, "/explanation", 422),
    ],
)
def test_bad_input_is_a_4xx_and_the_server_keeps_answering(logreg_client, digits, request_kwargs, url, status):
    r = logreg_client.post(url, **request_kwargs)
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    ok = logreg_client.post("/explanation?method=coef", json={"pixels": digits.splits["test"].images[1].tolist()})
    assert ok.status_code == 200 and ok.json()["method"] == "coef", ok.text
    assert np.asarray(ok.json()["contrast"]).shape == (8, 8)


def test_explain_cli_writes_a_png_per_image(logreg_dir, digits, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        (folder / f"d{i}.png").write_bytes(digit_png(digits.splits["test"].images[i]))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["explain", str(logreg_dir), str(folder), "--method", "occlusion", "--out", str(out)])
    assert r.exit_code == 1, r.output  # the broken file is reported, the others explained
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["d0-occlusion.png", "d1-occlusion.png"]
    with Image.open(out / pngs[0]) as im:
        assert im.width > 400 and im.height > 150
    r = CliRunner().invoke(
        cli, ["explain", str(logreg_dir), str(folder / "d0.png"), "--method", "gradcam", "--out", str(out)]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
