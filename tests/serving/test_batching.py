"""Micro-batching: concurrent callers' images run as one batch, each caller gets exactly its own rows, a bad
input fails only its caller, and the app's answers are the same with and without batching."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest
from serving_helpers import digit_png

from glyphlab.serving.app import ServeSettings, create_app
from glyphlab.serving.batching import MicroBatcher


def slow_rowsum(x: np.ndarray) -> np.ndarray:
    """A deterministic 'model': per image, its pixel sum and its first pixel; slow enough for batches to form."""
    time.sleep(0.01)
    if x.ndim != 3:
        raise ValueError(f"expected (n, H, W), got {x.shape}")
    return np.stack([x.sum(axis=(1, 2)), x[:, 0, 0]], axis=1)


def test_callers_get_their_own_rows_and_batches_form():
    rng = np.random.default_rng(0)
    inputs = [rng.random((int(rng.integers(1, 4)), 5, 5)).astype(np.float32) for _ in range(30)]
    batcher = MicroBatcher(slow_rowsum, max_batch=8)

    async def scenario():
        return await asyncio.gather(*(batcher.predict(x) for x in inputs))

    results = asyncio.run(scenario())
    for x, got in zip(inputs, results):
        np.testing.assert_array_equal(got, np.stack([x.sum(axis=(1, 2)), x[:, 0, 0]], axis=1))
    assert sum(batcher.batch_sizes) == sum(len(x) for x in inputs)
    assert max(batcher.batch_sizes) > 3 and max(batcher.batch_sizes) <= 8
    assert len(batcher.batch_sizes) < len(inputs)  # fewer model calls than callers


def test_a_bad_input_fails_only_its_caller():
    def strict(x: np.ndarray) -> np.ndarray:
        if x.shape[1:] != (4, 4):
            raise ValueError(f"the model takes 4x4 images, got {x.shape[1:]}")
        return slow_rowsum(x)

    batcher = MicroBatcher(strict, max_batch=16)
    good = [np.ones((1, 4, 4), np.float32) * i for i in range(5)]
    bad = np.ones((1, 3, 3), np.float32)  # another shape: the batch cannot even be concatenated

    async def scenario():
        return await asyncio.gather(*(batcher.predict(x) for x in [*good[:2], bad, *good[2:]]), return_exceptions=True)

    results = asyncio.run(scenario())
    assert isinstance(results[2], ValueError) and "4x4" in str(results[2])
    oks = [r for i, r in enumerate(results) if i != 2]
    assert all(isinstance(r, np.ndarray) for r in oks)
    assert [float(r[0, 0]) for r in oks] == [16.0 * i for i in range(5)]


@pytest.mark.parametrize("fixture", ["logreg_dir", "cnn_onnx_dir"])
def test_batched_answers_equal_unbatched(request, fixture, digits):
    model_dir = request.getfixturevalue(fixture)
    pngs = [digit_png(im) for im in digits.splits["test"].images[:16]]

    def answers(micro_batch: int):
        application = create_app(model_dir, ServeSettings(micro_batch=micro_batch, max_concurrency=16))
        predictor = application.state.predictor
        real, sizes = predictor.predict, []

        def recording(x):
            sizes.append(len(x))
            time.sleep(0.005)
            return real(x)

        predictor.predict = recording

        async def scenario():
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                rs = await asyncio.gather(
                    *(client.post("/prediction", content=p, headers={"content-type": "image/png"}) for p in pngs)
                )
            return [r.json() for r in rs if r.status_code == 200], sizes

        return asyncio.run(asyncio.wait_for(scenario(), 60))

    batched, sizes_b = answers(32)
    single, sizes_1 = answers(1)
    assert len(batched) == len(single) == len(pngs)
    assert max(sizes_b) > 1 and max(sizes_1) == 1  # batching happened, and only when asked for
    for a, b in zip(batched, single):
        assert a["label"] == b["label"] and [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)


def test_quick_batches_run_on_the_loop_and_slow_ones_in_a_thread():
    """After one measured call, a model quicker than inline_s a batch runs on the event loop's thread; a slow one
    keeps going to a worker thread (so the loop keeps answering)."""
    import threading

    def run(model_sleep_s: float) -> tuple[MicroBatcher, set[str]]:
        where: set[str] = set()

        def model(x: np.ndarray) -> np.ndarray:
            where.add("loop" if threading.current_thread() is loop_thread else "worker")
            time.sleep(model_sleep_s)
            return x.sum(axis=(1, 2))[:, None]

        batcher = MicroBatcher(model, max_batch=4, inline_s=0.05)  # far from both models: a busy CI host too

        async def scenario():
            for _ in range(5):
                await batcher.predict(np.ones((1, 3, 3), np.float32))

        asyncio.run(scenario())
        return batcher, where

    loop_thread = threading.current_thread()  # asyncio.run runs the loop in this thread
    quick, where_quick = run(0.0)
    assert where_quick == {"loop", "worker"} and quick.inline_batches == 4  # the first call is measured in a thread
    slow, where_slow = run(0.1)
    assert where_slow == {"worker"} and slow.inline_batches == 0 and slow.per_image_s >= 0.05


def rowsum(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=(1, 2))[:, None]


def test_makers_are_called_in_the_batch_and_their_errors_reach_only_their_caller():
    made: list[int] = []

    def maker(i: int):
        def make() -> np.ndarray:
            made.append(i)
            if i == 3:
                raise ValueError("upload 3 is damaged")
            return np.full((1, 2, 2), float(i), np.float32)

        return make

    batcher = MicroBatcher(rowsum, max_batch=8, wait_s=0.1)

    async def scenario():
        calls = [asyncio.ensure_future(batcher.predict(maker(i))) for i in range(6)]
        await asyncio.sleep(0.03)
        assert made == []  # not called when handed over: when the batch is assembled
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(scenario())
    assert sorted(made) == list(range(6))  # each maker called exactly once
    assert isinstance(results[3], ValueError) and "upload 3" in str(results[3])
    assert [float(r[0, 0]) for i, r in enumerate(results) if i != 3] == [4.0 * i for i in (0, 1, 2, 4, 5)]
    assert list(batcher.batch_sizes) == [5]  # the five good images went through the model together


def test_wait_gathers_callers_that_arrive_within_it():
    async def scenario(wait_s: float):
        batcher = MicroBatcher(rowsum, max_batch=8, wait_s=wait_s)

        async def late(delay: float):
            await asyncio.sleep(delay)
            return await batcher.predict(np.ones((1, 2, 2), np.float32))

        t0 = time.perf_counter()
        await asyncio.gather(*(late(d) for d in (0.0, 0.01, 0.02)))
        return list(batcher.batch_sizes), time.perf_counter() - t0

    sizes, _ = asyncio.run(scenario(0.0))
    assert sizes[0] == 1 and sum(sizes) == 3  # no wait: the first caller's image goes at once, alone
    sizes, took = asyncio.run(scenario(0.1))
    assert sizes == [3] and took >= 0.1  # the first waited for the two that came within 100 ms


@pytest.mark.parametrize("limits", [{"max_batch": 4}, {"max_batch": 32, "max_callers": 4}])
def test_a_full_batch_does_not_wait(limits):
    """Callers arriving 10 ms apart end a 500 ms wait as soon as the batch is full: max_batch images, or as
    many callers as can ever be pending (a server's concurrency limit)."""
    batcher = MicroBatcher(rowsum, wait_s=0.5, **limits)

    async def late(delay: float):
        await asyncio.sleep(delay)
        return await batcher.predict(np.ones((1, 2, 2), np.float32))

    async def scenario():
        t0 = time.perf_counter()
        await asyncio.gather(*(late(0.01 * i) for i in range(4)))
        return time.perf_counter() - t0

    assert asyncio.run(scenario()) < 0.25 and list(batcher.batch_sizes) == [4]


def test_bad_batcher_settings_are_refused():
    with pytest.raises(ValueError, match="wait_s"):
        MicroBatcher(rowsum, wait_s=-1.0)
    with pytest.raises(ValueError, match="max_callers"):
        MicroBatcher(rowsum, max_callers=0)


class Abort(BaseException):
    """Not an Exception: what a KeyboardInterrupt-like failure inside a batch looks like."""


def test_no_caller_hangs_when_the_worker_itself_dies():
    def make(fail: bool):
        def maker() -> np.ndarray:
            if fail:
                raise Abort("gone")
            return np.ones((1, 2, 2), np.float32)

        return maker

    batcher = MicroBatcher(rowsum, max_batch=2)

    async def scenario():
        calls = [batcher.predict(make(i == 1)) for i in range(4)]  # the second one kills the worker
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)

    results = asyncio.run(scenario())
    assert all(isinstance(r, (RuntimeError, Abort)) for r in results), results
    assert any("micro-batch worker stopped" in str(r) for r in results)


def test_a_bad_upload_among_batched_ones_is_a_400_and_the_others_answer(cnn_onnx_dir, digits):
    """With a batch wait, uploads are decoded inside the micro-batch: one damaged upload (and one blank one)
    get their own answers while the good ones batch together and match the unbatched answers."""
    pngs = [digit_png(im) for im in digits.splits["test"].images[:6]]
    blank = digit_png(np.zeros((28, 28), np.float32))
    bodies = [*pngs[:3], pngs[3][:40], blank, *pngs[4:]]

    def answers(**settings):
        application = create_app(cnn_onnx_dir, ServeSettings(max_concurrency=16, **settings))
        predictor, sizes, prepared_at = application.state.predictor, [], []
        real, real_prepare = predictor.predict, predictor.prepare_bytes
        predictor.predict = lambda x: sizes.append(len(x)) or real(x)
        predictor.prepare_bytes = lambda *a: prepared_at.append(time.perf_counter() - t0) or real_prepare(*a)
        t0 = time.perf_counter()

        async def scenario():
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await asyncio.gather(
                    *(client.post("/prediction", files={"file": ("g.png", b, "image/png")}) for b in bodies)
                )

        return asyncio.run(asyncio.wait_for(scenario(), 60)), sizes, prepared_at

    waited, sizes, prepared_at = answers(batch_wait_ms=200.0)
    alone, _, _ = answers(micro_batch=1)
    assert min(prepared_at) >= 0.15  # decoded by the batch after its wait, not on arrival
    assert [r.status_code for r in waited] == [r.status_code for r in alone] == [200, 200, 200, 400, 422, 200, 200]
    assert max(sizes) > 1  # the good uploads were predicted together
    assert waited[4].json()["detail"][0]["type"] == "no_ink"
    for a, b in zip(waited, alone):
        if a.status_code != 200:
            assert a.json() == b.json()
        else:
            assert a.json()["label"] == b.json()["label"]
            assert a.json()["probabilities"] == pytest.approx(b.json()["probabilities"], abs=1e-5)
