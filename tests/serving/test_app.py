"""The HTTP app: good requests, and every kind of bad input answered with its 4xx (never a 500), after which
the server still answers a good request."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serving_helpers import bomb_png, digit_png, drawn_one, png_bytes

from glyphlab.serving.app import ServeSettings, create_app


@pytest.fixture(scope="module")
def client(logreg_dir):
    settings = ServeSettings(max_bytes=200_000, max_pixels=1_000_000, max_batch=8)
    with TestClient(create_app(logreg_dir, settings), raise_server_exceptions=True) as c:
        yield c


def good(client: TestClient, one_png: bytes) -> None:
    r = client.post("/prediction", files={"file": ("one.png", one_png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"label", "class_name", "probabilities", "top", "model_id"}


def test_health_model_docs_page(client, logreg_dir):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model_id"].startswith("logreg-") and h["backend"] == "onnxruntime"
    m = client.get("/model").json()
    assert m["manifest"]["model"] == "logreg" and m["input_shape"] == [8, 8] and len(m["classes"]) == 10
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/prediction"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/png"} <= set(content)
    assert "PredictionRequest" in spec["components"]["schemas"]
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "cdn" not in page.text.lower() and 'src="http' not in page.text


def test_upload_predicts_the_right_digits(client, digits):
    test = digits.splits["test"]
    right = 0
    for img, label in zip(test.images[:20], test.labels[:20]):
        r = client.post("/prediction", files={"file": ("d.png", digit_png(img), "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["top"]) == 3 and body["top"][0]["label"] == body["label"]
        assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        right += body["label"] == int(label)
    assert right >= 12  # re-centred scans of 8x8 digits: most stay right


def test_json_pixels_and_batch(client, digits):
    x = digits.splits["test"].images[:5]
    r = client.post("/prediction", json={"pixels": x[0].tolist()})
    assert r.status_code == 200 and r.json()["class_name"] == str(digits.splits["test"].labels[0])
    r = client.post("/prediction", json={"images": x.tolist()})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == list(np.asarray(digits.splits["test"].labels[:5]))
    # another shape is cropped, resized and centred
    big = np.kron(x[0], np.ones((4, 4)))
    assert client.post("/prediction", json={"pixels": big.tolist()}).status_code == 200
    # a raw image/png body works too
    r = client.post("/prediction", content=png_bytes(drawn_one()), headers={"content-type": "image/png"})
    assert r.status_code == 200


def _json(client, raw: str | bytes):
    return client.post("/prediction", content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "raw, loc",
    [
        ('{"pixels": [[0.1, NaN], [0, 1]]}', ["body", "pixels", 0, 1]),
        ('{"pixels": [[0.1, Infinity], [0, 1]]}', ["body", "pixels", 0, 1]),
        ('{"pixels": [[0.1, 1.5], [0, 1]]}', ["body", "pixels", 0, 1]),
        ('{"pixels": [[0.1, -0.5], [0, 1]]}', ["body", "pixels", 0, 1]),
        ('{"pixels": [[0.1, "0.5"], [0, 1]]}', ["body", "pixels", 0, 1]),
        ('{"pixels": [[0.1, 0.5], [0]]}', ["body", "pixels"]),
        ('{"pixels": [0.1, 0.5]}', ["body", "pixels", 0]),
        ('{"pixels": []}', ["body", "pixels"]),
        ('{"pixels": [[]]}', ["body", "pixels", 0]),
        ('{"images": [[[0.5]], [[0.5, 0.5], [1]]]}', ["body", "images"]),
        ('{"images": []}', ["body", "images"]),
        ('{"pixels": [[0.5]], "images": [[[0.5]]]}', ["body"]),
        ("{}", ["body"]),
        ('{"pixel": [[0.5]]}', ["body", "pixel"]),
        ("[1, 2, 3]", ["body"]),
        ('{"pixels": [[0.5]', ["body"]),
        ("not json at all", ["body"]),
        ("", ["body"]),
        ("[" * 5000 + "]" * 5000, ["body"]),
    ],
)
def test_bad_json_is_422_with_the_field_path(client, one_png, raw, loc):
    r = _json(client, raw)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail and all(e["msg"] for e in detail)
    assert any(e["loc"][: len(loc)] == loc for e in detail), detail
    good(client, one_png)


def test_batch_limit_is_422(client, one_png):
    r = client.post("/prediction", json={"images": [[[0.5]]] * 9})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "images"]
    assert "at most 8" in r.json()["detail"][0]["msg"]
    good(client, one_png)


def test_side_limit_is_422(client, one_png):
    r = client.post("/prediction", json={"pixels": [[0.0] * 600]})
    assert r.status_code == 422
    good(client, one_png)


@pytest.mark.parametrize(
    "kind",
    ["not-image", "empty", "truncated-png", "truncated-jpeg", "bomb-header", "bomb-mode-1", "png-header-only"],
)
@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_bad_images_are_400(client, one_png, kind, how):
    full = png_bytes(drawn_one())
    jpeg = png_bytes(drawn_one(), "JPEG")
    data = {
        "not-image": b"%PDF-1.4 this is not an image",
        "empty": b"",
        "truncated-png": full[: len(full) // 2],
        "truncated-jpeg": jpeg[: len(jpeg) // 2],
        "bomb-header": bomb_png(20000, 20000),
        "bomb-mode-1": png_bytes(Image.new("1", (2000, 1000))),  # 2 M pixels > this server's 1 M, ~2 KB
        "png-header-only": full[:33],
    }[kind]
    if how == "multipart":
        r = client.post("/prediction", files={"file": ("x.png", data, "image/png")})
    else:
        r = client.post("/prediction", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 400, r.text
    assert isinstance(r.json()["detail"], str) and len(r.json()["detail"]) > 10
    good(client, one_png)


def test_real_20000_square_bomb_is_refused_quickly(client, one_png):
    im = Image.new("1", (20000, 20000))  # 50 MB of bits in memory, ~50 KB as PNG
    data = png_bytes(im)
    assert len(data) < 200_000
    r = client.post("/prediction", files={"file": ("bomb.png", data, "image/png")})
    assert r.status_code == 400 and "pixels" in r.json()["detail"]
    good(client, one_png)


def test_too_large_is_413_by_header_and_by_counting(client, one_png):
    big = b"\0" * 300_000
    r = client.post("/prediction", content=big, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "200,000" in r.json()["detail"]
    r = client.post("/prediction", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413

    def stream():  # chunked: no Content-Length, so the middleware must count
        for _ in range(30):
            yield b"\0" * 10_000

    r = client.post("/prediction", content=stream(), headers={"content-type": "image/png"})
    assert r.status_code == 413
    r = client.post("/prediction", content=b"{}", headers={"content-type": "application/json", "content-length": "x"})
    assert r.status_code == 400
    good(client, one_png)


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/octet-stream", "image/tiff", ""])
def test_wrong_content_type_is_415(client, one_png, ctype):
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/prediction", content=b"abc", headers=headers)
    assert r.status_code == 415, r.text
    good(client, one_png)


def test_multipart_without_file_and_broken_multipart(client, one_png):
    r = client.post("/prediction", files={"image": ("x.png", one_png, "image/png")})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]
    r = client.post("/prediction", data={"file": "just text"})
    assert r.status_code in (415, 422)
    r = client.post(
        "/prediction", content=b"--xx\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=xx"}
    )
    assert r.status_code in (400, 422)
    good(client, one_png)


def test_torch_model_served_natively(cnn_dir, one_png, digits):
    with TestClient(create_app(cnn_dir)) as c:
        assert c.get("/health").json()["backend"] == "native"
        r = c.post("/prediction", files={"file": ("one.png", one_png, "image/png")})
        assert r.status_code == 200 and r.json()["model_id"].startswith("cnn-small-")
        x = digits.splits["test"].images[:3]
        assert c.post("/prediction", json={"images": x.tolist()}).status_code == 200


def test_no_ink_is_said_so(client, digits):
    """A blank canvas (upload, raw body, JSON pixels or one image of a batch) is a 422 of type no_ink."""
    from PIL import Image

    blank = png_bytes(Image.new("RGB", (280, 280), "white"))
    for kwargs, loc in [
        ({"files": {"file": ("blank.png", blank, "image/png")}}, ["body", "file"]),
        ({"content": blank, "headers": {"content-type": "image/png"}}, ["body"]),
        ({"json": {"pixels": [[0.0] * 8] * 8}}, ["body", "pixels"]),
        ({"json": {"pixels": [[0.3] * 20] * 20}}, ["body", "pixels"]),
    ]:
        r = client.post("/prediction", **kwargs)
        assert r.status_code == 422, (loc, r.text)
        (err,) = r.json()["detail"]
        assert err["type"] == "no_ink" and err["loc"] == loc and "no ink" in err["msg"]
    batch = digits.splits["test"].images[:3].tolist()
    batch[1] = [[0.0] * 8] * 8
    r = client.post("/prediction", json={"images": batch})
    assert r.status_code == 422 and [e["loc"] for e in r.json()["detail"]] == [["body", "images", 1]]


def test_answers_match_the_response_models(client, digits):
    from glyphlab.serving.schemas import BatchResponse, PredictionResponse

    x = digits.splits["test"].images[:2]
    PredictionResponse.model_validate(client.post("/prediction", json={"pixels": x[0].tolist()}).json())
    BatchResponse.model_validate(client.post("/prediction", json={"images": x.tolist()}).json())


def test_describe_lists_the_top_k_in_top_k_order_with_ties(client):
    """describe() builds the answer from one tolist(); its `top` is exactly top_k's (stable on ties)."""
    predictor = client.app.state.predictor
    n = len(predictor.classes)
    probs = np.full(n, 0.5 / (n - 2), dtype=np.float32)
    probs[[2, 5]] = 0.25  # a tie at the top: the lower index comes first
    for k in (1, 3, n, n + 5):
        d = predictor.describe(probs, k)
        assert d["top"] == predictor.top_k(probs[None], k)[0]
        assert [t["label"] for t in d["top"][:2]] == [2, 5][: min(k, 2)] and d["label"] == 2
        assert d["probabilities"] == {c: float(p) for c, p in zip(predictor.classes, probs.astype(np.float64))}
        assert all(type(v) is float for v in d["probabilities"].values())


def test_direct_route_passes_other_requests_on_and_answers_a_crash_with_json_500():
    import asyncio
    import json

    from glyphlab.serving.middleware import DirectRouteMiddleware

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def crash(request):
        raise RuntimeError("a bug")

    mw = DirectRouteMiddleware(inner, method="POST", path="/prediction", handler=crash)

    async def call(method, path):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await mw({"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    assert asyncio.run(call("GET", "/prediction"))[0] == 204  # another method: the app's router
    assert asyncio.run(call("POST", "/explanation"))[0] == 204  # another path
    status, body = asyncio.run(call("POST", "/prediction"))
    assert status == 500 and "internal error" in json.loads(body)["detail"]
