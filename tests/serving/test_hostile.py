"""Issue 29: what a hostile client could do to a server, each made here and refused, bounded in time.

A JPEG of thousands of empty scans (each a pass over every pixel) is refused before decoding; no upload is
decoded on the event loop; a slow body does not hold a slot and is cut off; slow headers are cut off.
"""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time

import httpx
import pytest
from PIL import Image
from serving_helpers import digit_png

from glyphlab.data.images import MAX_JPEG_SCANS, ImageInputError, count_jpeg_scans, decode_image
from glyphlab.serving.app import ServeSettings, create_app
from glyphlab.serving.limits import ConcurrencyLimitMiddleware
from glyphlab.serving.middleware import BodyLimitMiddleware

#: a DC refinement scan (one component, Ah=1, Al=0) with no entropy-coded data: 10 bytes, a pass over the image
EMPTY_SCAN = b"\xff\xda\x00\x08\x01\x01\x00\x00\x00\x10"


def scan_bomb(side: int, scans: int) -> bytes:
    """A valid progressive JPEG (white, ``side`` px square) with ``scans`` empty scans added before its end."""
    buf = io.BytesIO()
    Image.new("L", (side, side), 255).save(buf, "JPEG", progressive=True, quality=50)
    data = buf.getvalue()
    return data[:-2] + EMPTY_SCAN * scans + b"\xff\xd9"


def test_a_jpeg_of_many_scans_is_refused_before_decoding(monkeypatch):
    ordinary = io.BytesIO()
    Image.new("L", (64, 64), 128).save(ordinary, "JPEG", progressive=True)
    assert 1 < count_jpeg_scans(ordinary.getvalue()) <= 12  # an encoder's own progression
    decode_image(ordinary.getvalue())
    bomb = scan_bomb(2000, 2 * MAX_JPEG_SCANS)  # 4 Mpx: within the pixel limit, ~0.3 ms a scan to decode
    assert count_jpeg_scans(bomb) == MAX_JPEG_SCANS + 1  # counting stops once over the limit
    # the bytes 0xFF 0xDA inside a marker segment (a comment here) are not scans
    comment = b"\xff\xfe" + (2 + 4 * 300).to_bytes(2, "big") + b"\xff\xda\x00\x00" * 300
    assert count_jpeg_scans(ordinary.getvalue()[:2] + comment + ordinary.getvalue()[2:]) == count_jpeg_scans(
        ordinary.getvalue()
    )
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("a scan bomb reached the decoder"))
    with pytest.raises(ImageInputError, match=f"more than {MAX_JPEG_SCANS} scans"):
        decode_image(bomb)


def test_the_server_refuses_a_scan_bomb_in_one_line(logreg_dir):
    app = create_app(logreg_dir, ServeSettings())

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post(
                "/prediction", content=scan_bomb(2000, 3 * MAX_JPEG_SCANS), headers={"content-type": "image/jpeg"}
            )

    r = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert r.status_code == 400 and "scans" in r.json()["detail"], r.text


@pytest.mark.parametrize("micro_batch", [32, 1])
def test_no_upload_is_decoded_on_the_event_loop(logreg_dir, digits, micro_batch):
    """While a small upload's decoding is held, /health still answers: the decoding is not on the loop."""
    app = create_app(logreg_dir, ServeSettings(micro_batch=micro_batch))
    predictor = app.state.predictor
    entered, health_answered, released = threading.Event(), threading.Event(), []
    real = predictor.prepare_bytes

    def held_prepare(data, limits=None):
        entered.set()
        released.append(health_answered.wait(3))  # on the loop, /health cannot answer: False after 3 s
        return real(data, limits)

    predictor.prepare_bytes = held_prepare
    png = digit_png(digits.splits["test"].images[0])
    assert len(png) < 64 * 1024

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            upload = asyncio.create_task(client.post("/prediction", content=png, headers={"content-type": "image/png"}))
            while not entered.is_set():
                await asyncio.sleep(0.005)
            health = await client.get("/health")
            health_answered.set()
            return await upload, health

    upload, health = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert upload.status_code == 200 and health.status_code == 200
    assert released == [True], "the upload was decoded on the event loop: /health waited for it"


async def _asgi_post(app, chunks, gap_s: float = 0.0):
    """A POST whose body arrives in ``chunks`` with ``gap_s`` between them (None: the client stalls for ever);
    (status, headers, body)."""
    sent, queue = [], list(chunks)

    async def receive():
        chunk = queue.pop(0)
        if chunk is None:
            await asyncio.sleep(3600)
        if gap_s:
            await asyncio.sleep(gap_s)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/prediction", "headers": []}, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


class Echo:
    async def __call__(self, scope, receive, send):
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def test_a_slow_body_holds_no_slot_and_is_cut_off():
    """One slot, no queue: a client whose body never finishes does not keep a complete request out; it gets 408."""
    limited = ConcurrencyLimitMiddleware(Echo(), max_concurrency=1, max_queue=0, queue_timeout_s=30)
    app = BodyLimitMiddleware(limited, max_bytes=1000, timeout_s=0.5)

    async def scenario():
        slow = asyncio.create_task(_asgi_post(app, [b"x", None]))  # the rest never comes
        await asyncio.sleep(0.05)
        fast = await asyncio.wait_for(_asgi_post(app, [b"hello"]), 5)
        return fast, await asyncio.wait_for(slow, 5)

    fast, slow = asyncio.run(scenario())
    assert fast[0] == 200 and fast[2] == b"hello"  # the slow one held no slot
    assert slow[0] == 408 and slow[1]["connection"] == "close" and b"did not arrive" in slow[2]


def test_bodies_being_read_are_capped_together():
    app = BodyLimitMiddleware(Echo(), max_bytes=1000, timeout_s=5, max_buffered=1500)

    async def scenario():
        first = asyncio.create_task(_asgi_post(app, [b"a" * 900, None]))  # holds 900 bytes, then stalls
        await asyncio.sleep(0.05)
        second = await asyncio.wait_for(_asgi_post(app, [b"c" * 700, b"d"]), 5)
        first.cancel()
        return second

    status, headers, _ = asyncio.run(scenario())
    assert status == 503 and headers["retry-after"] == "1"
    assert app.buffered == 0  # what the cancelled and the refused request held is given back


def test_a_body_over_the_budget_is_read_to_its_end_before_the_503():
    """A client still sending when refused gets a connection reset, not the 503 (115 of 150 in
    bench/serve_memory.py's flood), unless the rest of its body is read (and dropped) first."""
    app = BodyLimitMiddleware(Echo(), max_bytes=1000, timeout_s=5, max_buffered=1500)
    rest = [b"c" * 700, b"d" * 100, b"e" * 100]
    sent = []

    async def receive():
        return {"type": "http.request", "body": rest.pop(0), "more_body": len(rest) > 0}

    async def send(message):
        sent.append(message)

    async def scenario():
        first = asyncio.create_task(_asgi_post(app, [b"a" * 900, None]))  # holds 900 bytes, then stalls
        await asyncio.sleep(0.05)
        await asyncio.wait_for(app({"type": "http", "method": "POST", "path": "/p", "headers": []}, receive, send), 5)
        first.cancel()

    asyncio.run(scenario())
    assert sent[0]["status"] == 503 and rest == [] and app.buffered == 0


def test_refused_bodies_are_trimmed_from_the_heap_once_none_is_held(monkeypatch):
    """Refused bodies never reach the concurrency limit, which trims after the requests it lets in: 150 refused
    4.8 MB bodies left a worker's heap 141 MiB larger (bench/serve_memory.py). The body limit trims after them."""
    from glyphlab.serving import middleware

    trims = []
    monkeypatch.setattr(middleware, "TRIM_IDLE_S", 0.05)
    monkeypatch.setattr(middleware, "trim_heap", lambda: trims.append(1) or True)
    app = BodyLimitMiddleware(Echo(), max_bytes=1000, timeout_s=5)

    async def scenario():
        status, _, _ = await _asgi_post(app, [b"a" * 600, b"b" * 600])  # over the body limit: 413
        await asyncio.sleep(0.3)
        return status

    assert asyncio.run(scenario()) == 413 and trims == [1]


@pytest.mark.parametrize("protocol", ["HeaderDeadlineHttpTools", "HeaderDeadlineH11"])
def test_slow_headers_are_cut_off(monkeypatch, protocol):
    """A real uvicorn server with glyphlab's protocol: a connection that never completes its headers is closed."""
    import uvicorn

    from glyphlab.serving import protocols

    if getattr(protocols, protocol) is None:
        pytest.skip("httptools is not installed")
    monkeypatch.setattr(protocols, "HEADER_TIMEOUT_S", 0.3)
    config = uvicorn.Config(
        Echo(),
        host="127.0.0.1",
        port=0,
        http=f"glyphlab.serving.protocols:{protocol}",
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"POST /prediction HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            closed_after = time.monotonic()
            assert slow.recv(100) == b""  # closed by the server (recv raises on the 10-s timeout otherwise)
            assert time.monotonic() - closed_after < 9
        with socket.create_connection(("127.0.0.1", port), timeout=10) as ok:  # a prompt client is served
            ok.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            assert ok.recv(1000).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)


# -- one model per port, and serve's port errors as one line --------------------------------------------------
def test_a_port_something_listens_on_is_refused_before_sharing_it(logreg_dir, monkeypatch):
    from typer.testing import CliRunner

    from glyphlab.cli import app as cli_app
    from glyphlab.errors import GlyphlabError
    from glyphlab.serving import workers

    served, real_serve = [], workers.serve
    monkeypatch.setattr(workers, "serve", lambda *a, **kw: served.append(kw))
    for var in ("GLYPHLAB_SERVE_SETTINGS", "GLYPHLAB_SERVE_MODEL"):
        monkeypatch.setenv(var, "")
    other = workers.reuseport_sockets("127.0.0.1", 0, 1)[0]  # another server's SO_REUSEPORT socket
    other.listen(8)
    port = other.getsockname()[1]
    try:
        with pytest.raises(GlyphlabError, match=f"127.0.0.1:{port}: something already listens on it"):
            workers.check_port_free("127.0.0.1", port)
        with pytest.raises(GlyphlabError):  # a reuseport socket of our own would have been bound beside it
            real_serve("x:y", host="127.0.0.1", port=port, workers=2)
        for n in ("1", "2"):
            r = CliRunner().invoke(cli_app, ["serve", str(logreg_dir), "--port", str(port), "--workers", n])
            assert r.exit_code == 2 and "Traceback" not in r.output, r.output
            assert f"127.0.0.1:{port}" in r.output and "already listens" in r.output
    finally:
        other.close()
    assert served == []
    workers.check_port_free("127.0.0.1", port)  # free again
    r = CliRunner().invoke(cli_app, ["serve", str(logreg_dir), "--port", "-1"])
    assert r.exit_code == 2 and "serving" not in r.output and "--port" in r.output, r.output


# -- the published schema as strict as the server ---------------------------------------------------------------
INK = [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]


@pytest.fixture(scope="module")
def strict_client(logreg_dir):
    from fastapi.testclient import TestClient

    with TestClient(create_app(logreg_dir, ServeSettings(max_batch=4, backend="native"))) as client:
        yield client


@pytest.mark.parametrize(
    "path, body",
    [
        ("/prediction", {"pixels": INK}),
        ("/prediction", {"images": [INK, INK]}),
        ("/prediction", {"pixels": [[0, 1, 0], [0, 1, 0]]}),  # JSON integers are numbers
        ("/prediction", {"pixels": INK, "images": [INK]}),  # both
        ("/prediction", {}),  # neither
        ("/prediction", {"pixels": None, "images": [INK]}),
        ("/prediction", {"pixels": INK, "images": None}),
        ("/prediction", {"images": [INK] * 5}),  # more than max_batch
        ("/prediction", {"images": []}),
        ("/prediction", {"pixels": [[True, 1.0]]}),
        ("/prediction", {"pixels": [[1.5]]}),
        ("/prediction", {"pixels": INK, "other": 1}),
        ("/explanation", {"pixels": INK}),
        ("/explanation", {"images": [INK]}),  # no batches on /explanation
        ("/explanation", {"pixels": INK, "images": [INK]}),
    ],
)
def test_the_schema_and_the_server_agree(strict_client, path, body):
    """Issue 29 (8): 2,115 generated cases were valid by the schema and refused by the server. (Rows of unequal
    length are the one thing JSON Schema cannot say; the descriptions say it.)"""
    import json

    jsonschema = pytest.importorskip("jsonschema")
    doc = strict_client.get("/openapi.json").json()
    ref = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    by_schema = jsonschema.Draft202012Validator({**ref, "components": doc["components"]}).is_valid(body)
    r = strict_client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text
    assert by_schema == (r.status_code == 200), (by_schema, r.status_code, r.text)


def _query_schema(doc: dict, path: str, name: str) -> dict:
    params = {p["name"]: p["schema"] for p in doc["paths"][path]["post"]["parameters"]}
    schema = params[name]
    return next((v for v in schema.get("anyOf", []) if v.get("type") != "null"), schema)


@pytest.mark.parametrize(
    "path, name, value",
    [
        ("/explanation", "method", "auto"),
        ("/explanation", "method", "occlusion"),
        ("/explanation", "method", "coef"),
        ("/explanation", "method", "ig"),  # a logreg is no torch network: 400, so not in the schema either
        ("/explanation", "method", "gradcam"),
        ("/reading", "charset", "0-9"),
        ("/reading", "charset", "x7y"),
        ("/reading", "charset", "a-f"),  # none of the digits model's classes: 400
        ("/reading", "pattern", r"\d+"),
        ("/reading", "pattern", "(unclosed"),  # not a regex: 400
    ],
)
def test_the_query_parameters_in_the_schema_are_the_served_models(strict_client, path, name, value):
    """Issue 29 (8): the schema offered ``method=ig`` for a logreg and any ``charset`` or ``pattern``, which the
    server then refused (400); now it names the served model's methods and classes, and says a pattern is a regex."""
    jsonschema = pytest.importorskip("jsonschema")
    doc = strict_client.get("/openapi.json").json()
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    by_schema = jsonschema.Draft202012Validator(_query_schema(doc, path, name), format_checker=checker).is_valid(value)
    r = strict_client.post(path, params={name: value}, json={"pixels": INK})
    assert r.status_code in (200, 400), r.text
    assert by_schema == (r.status_code == 200), (by_schema, r.status_code, r.text)


def test_an_upload_part_is_declared_an_image_and_a_blank_one_is_documented(strict_client, digits):
    """The multipart field ``file`` says which media types it takes (a fuzzer sent random bytes there: 400) and is
    the only part (others: 422, as a JSON body's unknown keys; 9 generated parts were "too many fields", 400), the
    raw bodies are the formats the server decodes, and the 422 a blank image gets is in the document."""
    doc = strict_client.get("/openapi.json").json()
    post = doc["paths"]["/prediction"]["post"]
    content = post["requestBody"]["content"]
    part = content["multipart/form-data"]["encoding"]["file"]["contentType"]
    assert {t.strip() for t in part.split(",")} == {"image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp"}
    assert {"image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp"} <= set(content)
    assert content["multipart/form-data"]["schema"]["additionalProperties"] is False
    png = digit_png(digits.splits["test"].images[0])
    extra = strict_client.post("/prediction", files={"file": ("d.png", png, "image/png")}, data={"note": "x"})
    assert extra.status_code == 422 and extra.json()["detail"][0]["type"] == "extra_forbidden", extra.text
    assert strict_client.post("/prediction", files={"file": ("d.png", png, "image/png")}).status_code == 200
    example = post["responses"]["422"]["content"]["application/json"]["examples"]["no_ink"]["value"]
    blank = strict_client.post("/prediction", files={"file": ("b.png", _png_of(255), "image/png")})
    assert blank.status_code == 422 and blank.json()["detail"][0]["type"] == example["detail"][0]["type"] == "no_ink"


def _png_of(level: int, side: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (side, side), level).save(buf, "PNG")
    return buf.getvalue()


# -- the supervisor of --workers N does not load the model --------------------------------------------------------
def test_the_supervisor_of_several_workers_never_loads_the_model(logreg_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from glyphlab.cli import app as cli_app
    from glyphlab.serving import predictor, workers

    served = []
    monkeypatch.setattr(workers, "serve", lambda *a, **kw: served.append(kw))
    monkeypatch.setattr(predictor.Predictor, "__init__", lambda *a, **kw: pytest.fail("the supervisor loaded it"))
    for var in ("GLYPHLAB_SERVE_SETTINGS", "GLYPHLAB_SERVE_MODEL"):
        monkeypatch.setenv(var, "")
    r = CliRunner().invoke(cli_app, ["serve", str(logreg_dir), "--workers", "2", "--port", "0"])
    assert r.exit_code == 0 and served and served[0]["workers"] == 2, r.output
    # a folder that cannot be served is still refused in one line, by the child that tried it
    (tmp_path / "broken").mkdir()
    r = CliRunner().invoke(cli_app, ["serve", str(tmp_path / "broken"), "--workers", "2", "--port", "0"])
    assert r.exit_code == 2 and "no manifest.json" in r.output and "Traceback" not in r.output, r.output
    assert len(served) == 1


# -- queue, rate limit, and the body budget -----------------------------------------------------------------------
class Held:
    """An inner app that holds every request until ``open`` is set."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def __call__(self, scope, receive, send):
        await receive()
        await self.open.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_a_waiting_body_counts_towards_the_budget():
    """Bodies are read before a slot is taken, so those waiting for one are held too: the budget covers them."""
    held = Held()
    app = BodyLimitMiddleware(
        ConcurrencyLimitMiddleware(held, max_concurrency=1, max_queue=10, queue_timeout_s=30),
        max_bytes=1000,
        timeout_s=5,
        max_buffered=2000,
    )

    async def scenario():
        inside = asyncio.create_task(_asgi_post(app, [b"a" * 900]))
        waiting = asyncio.create_task(_asgi_post(app, [b"b" * 900]))
        await asyncio.sleep(0.05)
        assert app.buffered == 1800
        refused = await asyncio.wait_for(_asgi_post(app, [b"c" * 900]), 5)
        held.open.set()
        return refused, await inside, await waiting

    refused, inside, waiting = asyncio.run(scenario())
    assert refused[0] == 503 and inside[0] == waiting[0] == 200 and app.buffered == 0


def test_a_burst_of_cheap_requests_waits_and_a_hopeless_wait_is_refused_at_once():
    async def scenario():
        held = Held()
        mw = ConcurrencyLimitMiddleware(held, max_concurrency=1, max_queue=1024, queue_timeout_s=30)
        mw.service_s = 0.001  # measured: a millisecond a request
        tasks = [asyncio.create_task(_asgi_post(mw, [b"x"])) for _ in range(300)]  # > the old fixed queue of 128
        await asyncio.sleep(0.1)
        assert len(mw.waiters) == 299 and mw.rejected == 0
        held.open.set()
        assert [r[0] for r in await asyncio.wait_for(asyncio.gather(*tasks), 10)] == [200] * 300
        held.open.clear()
        mw.service_s = 10.0  # a slow model: the fourth in the queue would wait 40 s > 30 s
        tasks = [asyncio.create_task(_asgi_post(mw, [b"x"])) for _ in range(4)]
        await asyncio.sleep(0.1)
        refused = await asyncio.wait_for(_asgi_post(mw, [b"x"]), 5)
        held.open.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return refused

    status, headers, _ = asyncio.run(scenario())
    assert status == 503 and int(headers["retry-after"]) >= 1


def test_a_client_over_its_rate_gets_429_with_retry_after(monkeypatch):
    from glyphlab.serving import limits

    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    app = limits.RateLimitMiddleware(Echo(), rate=2.0)  # bursts of 4

    async def post(client: str):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"x", "more_body": False}

        async def send(message):
            sent.append(message)

        await app(
            {"type": "http", "method": "POST", "path": "/prediction", "headers": [], "client": (client, 1)},
            receive,
            send,
        )
        start = sent[0]
        return start["status"], dict(start["headers"])

    async def scenario():
        a = [await post("10.0.0.1") for _ in range(5)]
        b = await post("10.0.0.2")  # another client has its own bucket
        clock[0] += 0.5  # one token back
        return a, b, await post("10.0.0.1"), await post("10.0.0.1")

    a, b, later, again = asyncio.run(scenario())
    assert [s for s, _ in a] == [200] * 4 + [429] and a[4][1][b"retry-after"] == b"1"
    assert b[0] == 200 and later[0] == 200 and again[0] == 429
    assert ServeSettings(rate_limit=2.0).rate_limit == 2.0


def test_counting_the_scans_of_a_crafted_jpeg_stays_cheap():
    """Millions of tiny markers would make the marker walk itself slow: past MAX_JPEG_MARKERS it is refused."""
    from glyphlab.data.images import MAX_JPEG_MARKERS

    tems = b"\xff\xd8" + b"\xff\x01" * (2 * MAX_JPEG_MARKERS) + EMPTY_SCAN * (MAX_JPEG_SCANS + 1) + b"\xff\xd9"
    with pytest.raises(ImageInputError, match="markers"):
        decode_image(tems)
