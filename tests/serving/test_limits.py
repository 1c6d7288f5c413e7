"""The concurrency limit: requests beyond max_concurrency wait in a bounded queue, beyond it (or after the
queue timeout) they get 503 with Retry-After; GETs are never queued; `glyphlab serve` options reach the app."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import threading

import httpx
import pytest
from serving_helpers import digit_png
from typer.testing import CliRunner

from glyphlab.cli import app as cli_app
from glyphlab.serving.app import ServeSettings, create_app
from glyphlab.serving.limits import ConcurrencyLimitMiddleware, freeze_startup_objects, trim_heap, tune_malloc


class Gate:
    """An inner ASGI app that answers 200 once `open` is set, counting how many are inside at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.inside = 0
        self.most_inside = 0

    async def __call__(self, scope, receive, send) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            while (await receive()).get("more_body"):
                pass
            await self.open.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.inside -= 1


async def call(app, method: str = "POST", body: bytes = b"{}") -> tuple[int, dict]:
    """One ASGI request; (status, headers)."""
    sent = []
    messages = [
        {"type": "http.request", "body": body[:3], "more_body": True},
        {"type": "http.request", "body": body[3:], "more_body": False},
    ]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": method, "path": "/prediction", "headers": []}, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}


def test_beyond_concurrency_and_queue_is_503_with_retry_after():
    async def scenario():
        gate = Gate()
        mw = ConcurrencyLimitMiddleware(gate, max_concurrency=2, max_queue=3, queue_timeout_s=30)
        tasks = [asyncio.create_task(call(mw)) for _ in range(5)]  # 2 inside, 3 waiting
        await asyncio.sleep(0.05)
        assert gate.inside == 2 and len(mw.waiters) == 3
        status, headers = await asyncio.wait_for(call(mw), 5)  # the queue is full: refused at once
        assert status == 503 and int(headers["retry-after"]) >= 1 and headers["connection"] == "close"
        gate.open.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert [s for s, _ in results] == [200] * 5
        assert gate.most_inside == 2 and mw.active == 0 and not mw.waiters and mw.rejected == 1

    asyncio.run(scenario())


def test_queue_timeout_is_503_and_frees_the_place():
    async def scenario():
        gate = Gate()
        mw = ConcurrencyLimitMiddleware(gate, max_concurrency=1, max_queue=5, queue_timeout_s=0.1)
        first = asyncio.create_task(call(mw))
        await asyncio.sleep(0.02)
        status, headers = await asyncio.wait_for(call(mw), 5)  # waits 0.1 s, then gives up
        assert status == 503 and "retry-after" in headers
        assert not mw.waiters
        gate.open.set()
        assert (await first)[0] == 200
        assert (await call(mw))[0] == 200 and mw.active == 0

    asyncio.run(scenario())


def test_get_is_never_queued():
    async def scenario():
        gate = Gate()
        mw = ConcurrencyLimitMiddleware(gate, max_concurrency=1, max_queue=0, queue_timeout_s=30)
        busy = asyncio.create_task(call(mw))
        await asyncio.sleep(0.02)
        assert (await call(mw))[0] == 503  # a POST is refused ...
        get = asyncio.create_task(call(mw, "GET"))  # ... a GET goes through (the gate holds it like any)
        await asyncio.sleep(0.02)
        assert gate.inside == 2
        gate.open.set()
        assert (await get)[0] == 200 and (await busy)[0] == 200

    asyncio.run(scenario())


def test_cancelled_waiter_leaves_the_queue():
    async def scenario():
        gate = Gate()
        mw = ConcurrencyLimitMiddleware(gate, max_concurrency=1, max_queue=2, queue_timeout_s=30)
        busy = asyncio.create_task(call(mw))
        waiting = asyncio.create_task(call(mw))
        await asyncio.sleep(0.02)
        assert len(mw.waiters) == 1
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert not mw.waiters
        gate.open.set()
        assert (await busy)[0] == 200 and mw.active == 0

    asyncio.run(scenario())


def test_heap_is_trimmed_only_after_a_quiet_spell(monkeypatch):
    """A busy server goes idle between requests; it trims once it has been idle for TRIM_IDLE_S, not every time."""
    from glyphlab.serving import limits

    trims: list[float] = []
    monkeypatch.setattr(limits, "TRIM_IDLE_S", 0.2)
    monkeypatch.setattr(limits, "trim_heap", lambda: trims.append(1) or True)

    async def scenario():
        gate = Gate()
        gate.open.set()
        mw = ConcurrencyLimitMiddleware(gate, max_concurrency=2, max_queue=2, queue_timeout_s=30)
        for _ in range(10):  # ten requests 50 ms apart: idle in between, never for 0.2 s
            assert (await call(mw))[0] == 200
            await asyncio.sleep(0.05)
        assert trims == []
        await asyncio.sleep(0.4)  # now a quiet spell
        assert trims == [1]
        await asyncio.sleep(0.3)  # nothing new was freed: no second trim
        assert trims == [1]

    asyncio.run(scenario())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc tuning and trimming are glibc's")
def test_malloc_is_tuned_and_freed_heap_goes_back():
    assert tune_malloc() is True
    blobs = [bytearray(200_000) for _ in range(200)]  # 40 MB in chunks under the 1 MiB mmap threshold: heap
    del blobs
    assert trim_heap() is True  # malloc_trim returned some of it to the system


def test_the_app_answers_503_when_its_only_slot_is_busy(logreg_dir, digits):
    """Through create_app: max_concurrency=1, max_queue=0; the first request is held inside predict."""
    application = create_app(logreg_dir, ServeSettings(max_concurrency=1, max_queue=0))
    predictor = application.state.predictor
    entered, release = threading.Event(), threading.Event()
    real = predictor.predict

    def slow_predict(x):
        entered.set()
        release.wait(10)
        return real(x)

    predictor.predict = slow_predict
    png = digit_png(digits.splits["test"].images[0])

    async def scenario():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = asyncio.create_task(client.post("/prediction", content=png, headers={"content-type": "image/png"}))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            second = await client.post("/prediction", content=png, headers={"content-type": "image/png"})
            health = await client.get("/health")
            release.set()
            return await first, second, health

    first, second, health = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert first.status_code == 200 and "label" in first.json()
    assert second.status_code == 503 and int(second.headers["retry-after"]) >= 1 and "limit" in second.json()["detail"]
    assert health.status_code == 200


def test_serve_options_reach_the_settings(logreg_dir, monkeypatch):
    from glyphlab.serving import workers

    seen = {}
    monkeypatch.setattr(workers, "serve", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(workers, "check_model_in_child", lambda *a: None)  # its own test: test_hostile
    for var in ("GLYPHLAB_SERVE_SETTINGS", "GLYPHLAB_SERVE_MODEL"):  # serve sets them; restored afterwards
        monkeypatch.setenv(var, "")
    r = CliRunner().invoke(
        cli_app,
        [
            "serve",
            str(logreg_dir),
            "--max-body-mb",
            "1.5",
            "--max-concurrency",
            "3",
            "--max-queue",
            "7",
            "--queue-timeout",
            "2.5",
            "--workers",
            "2",
            "--micro-batch",
            "4",
            "--batch-wait-ms",
            "2.5",
            "--rate-limit",
            "5",
            "--body-timeout",
            "7",
            "--header-timeout",
            "3",
            "--expose-details",
        ],
    )
    assert r.exit_code == 0, r.output
    settings = ServeSettings.model_validate_json(os.environ["GLYPHLAB_SERVE_SETTINGS"])
    assert (settings.max_bytes, settings.max_concurrency, settings.max_queue, settings.queue_timeout_s) == (
        1_500_000,
        3,
        7,
        2.5,
    )
    assert seen["workers"] == 2 and settings.micro_batch == 4 and seen["access_log"] is True
    assert settings.batch_wait_ms == 2.5
    assert (settings.rate_limit, settings.body_timeout_s, settings.header_timeout_s, settings.expose_details) == (
        5.0,
        7.0,
        3.0,
        True,
    )
    assert seen["http"].endswith(("HeaderDeadlineHttpTools", "HeaderDeadlineH11"))
    r = CliRunner().invoke(cli_app, ["serve", str(logreg_dir), "--no-access-log"])
    assert r.exit_code == 0 and seen["access_log"] is False, r.output
    r = CliRunner().invoke(cli_app, ["serve", str(logreg_dir), "--max-concurrency", "0"])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli_app, ["serve", str(logreg_dir), "--batch-wait-ms", "-1"])
    assert r.exit_code == 2 and "batch-wait-ms" in r.output


@pytest.mark.parametrize("mb,status", [(0.01, 413), (1.0, 200)])
def test_body_limit_from_settings(logreg_dir, mb, status):
    from fastapi.testclient import TestClient

    body = json.dumps({"pixels": [[0.0] * 30 + [1.0] * 4 + [0.0] * 30] * 64}).encode()  # ~16 KB, a stroke of ink
    with TestClient(create_app(logreg_dir, ServeSettings(max_bytes=int(mb * 1e6)))) as c:
        r = c.post("/prediction", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text


def test_startup_objects_are_frozen_out_of_collections():
    """After start-up a worker's libraries and model sit in the permanent generation; new garbage is still collected.

    Frozen objects can still be freed by reference counting (another test's thread dropping a frozen object), so the
    permanent generation may shrink by a few objects; it never grows and what was frozen is never collected."""
    import gc
    import weakref

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    was_enabled = gc.isenabled()
    try:
        gc.disable()  # no automatic collection may run between building the cycles and the checks
        startup = Node()
        startup.other, startup_ref = Node(), weakref.ref(startup)
        startup.other.other = startup  # a cycle alive at start-up, dropped after freezing: it stays frozen
        frozen = freeze_startup_objects()
        del startup
        assert frozen > 1000 and frozen - 100 <= gc.get_freeze_count() <= frozen
        garbage = [Node() for _ in range(10)]
        refs = [weakref.ref(n) for n in garbage]
        for a, b in zip(garbage, garbage[1:]):  # reference cycles made after start-up: only the collector frees them
            a.other, b.other = b, a
        del garbage, a, b
        gc.collect()
        assert all(r() is None for r in refs), "garbage made after start-up was not collected"
        assert startup_ref() is not None, "a frozen start-up object was collected"
        assert frozen - 100 <= gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
    gc.collect()
    assert startup_ref() is None  # unfrozen again, the start-up cycle is ordinary garbage


@pytest.mark.parametrize("fixture", ["logreg_dir", "cnn_onnx_dir"])
def test_warm_up_runs_the_batch_sizes_a_server_will_see(request, fixture, monkeypatch):
    from glyphlab.serving.predictor import Predictor

    predictor = Predictor(request.getfixturevalue(fixture))
    seen = []
    real = predictor.predict
    monkeypatch.setattr(predictor, "predict", lambda x: seen.append(x.shape) or real(x))
    predictor.warm_up(32)
    assert seen == [(1, *predictor.input_shape), (32, *predictor.input_shape)]
