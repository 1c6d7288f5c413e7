"""What stands between the network and the app: /metrics (Prometheus, one worker and several under load), the API
key (401 without it, public routes, the page asking for it), CORS only when asked, and the open-host warning."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from net_helpers import free_port, serve_command, wait_until_up
from serving_helpers import digit_png, drawn_one, png_bytes, stop_server

from glyphlab.errors import ConfigError
from glyphlab.serving.app import ServeSettings, create_app
from glyphlab.serving.auth import is_loopback, load_api_key, open_warning
from glyphlab.serving.gateway import GatewaySettings, configure_workers
from glyphlab.serving.predictor import Predictor

pytest.importorskip("prometheus_client", reason="needs the serve extra: pip install 'glyphlab[serve]'")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

KEY = "test-key-0123456789abcdef"


def scrape(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_metrics_count_requests_latency_batches_and_classes(logreg_dir, digits):
    with TestClient(create_app(logreg_dir)) as client:
        images = digits["test"].images[:4]
        for im in images[:3]:
            assert (
                client.post("/prediction", content=digit_png(im), headers={"Content-Type": "image/png"}).status_code
                == 200
            )
        batch = client.post("/prediction", json={"images": images.tolist()})
        assert batch.status_code == 200
        assert client.post("/prediction", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
        assert client.get("/health").status_code == 200
        assert client.get("/no-such-page").status_code == 404
        res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    s = scrape(res.text)
    model, version = "logreg", Predictor(logreg_dir).model_id.rsplit("-", 1)[1]
    ids = {"model": model, "version": version}
    assert total(s, "glyphlab_requests_total", route="/prediction", status="200", method="POST", **ids) == 4
    assert total(s, "glyphlab_requests_total", route="/prediction", status="415") == 1
    assert total(s, "glyphlab_requests_total", route="/health", status="200") == 1
    assert total(s, "glyphlab_requests_total", route="other", status="404") == 1  # no series per unknown path
    assert total(s, "glyphlab_request_duration_seconds_count", route="/prediction", **ids) == 5
    assert total(s, "glyphlab_request_duration_seconds_bucket", route="/prediction", le="+Inf") == 5
    # 7 images predicted, by class: the answers' labels
    assert total(s, "glyphlab_predictions_total", **ids) == 7
    labels = [p["class_name"] for p in batch.json()["predictions"]]
    for name in set(labels):
        assert total(s, "glyphlab_predictions_total", class_name=name) >= labels.count(name)
    assert (
        total(s, "glyphlab_batch_size_count") == 4 and total(s, "glyphlab_batch_size_sum") == 7
    )  # warm-up not counted
    assert total(s, "glyphlab_requests_in_progress") == 1  # the scrape itself
    assert total(s, "glyphlab_queue_depth") == 0 and total(s, "glyphlab_rejected_requests_total") == 0


class SlowPredictor(Predictor):
    def predict(self, images):
        time.sleep(0.5)
        return super().predict(images)


def test_metrics_count_rejections_and_queue(logreg_dir):
    """One slot and one place in the queue: of 5 concurrent requests 2 are served and 3 refused with 503."""
    import httpx

    app = create_app(SlowPredictor(logreg_dir), ServeSettings(max_concurrency=1, max_queue=1, micro_batch=1))
    body = png_bytes(drawn_one())

    async def go() -> tuple[list[int], str, str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            posts = [
                asyncio.ensure_future(c.post("/prediction", content=body, headers={"Content-Type": "image/png"}))
                for _ in range(5)
            ]
            for _ in range(300):  # until all five arrived: one predicting, one queued, three refused
                during = (await c.get("/metrics")).text
                if total(scrape(during), "glyphlab_rejected_requests_total") == 3:
                    break
                await asyncio.sleep(0.01)
            statuses = sorted(r.status_code for r in await asyncio.gather(*posts))
            return statuses, during, (await c.get("/metrics")).text

    statuses, during, after = asyncio.run(go())
    assert statuses == [200, 200, 503, 503, 503]
    d, a = scrape(during), scrape(after)
    assert total(d, "glyphlab_queue_depth") == 1 and total(d, "glyphlab_requests_in_progress") >= 3
    assert total(a, "glyphlab_rejected_requests_total") == 3
    assert total(a, "glyphlab_requests_total", route="/prediction", status="503") == 3
    assert total(a, "glyphlab_queue_depth") == 0 and total(a, "glyphlab_requests_in_progress") == 1


def test_api_key_guards_every_route_but_the_public_ones(logreg_dir, one_png):
    app = create_app(logreg_dir, api_key=KEY)
    png = {"Content-Type": "image/png"}
    with TestClient(app) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key-0123456789"},
            {"Authorization": f"Basic {KEY}"},
            {"Authorization": KEY},
        ):
            res = client.post("/prediction", content=one_png, headers={**png, **headers})
            assert res.status_code == 401 and res.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in res.json()["detail"]
        ok = client.post("/prediction", content=one_png, headers={**png, "Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and "class_name" in ok.json()
        for path in ("/model", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 401, path
        assert client.get("/model", headers={"Authorization": f"bearer {KEY}"}).status_code == 200
        assert KEY not in client.get("/model", headers={"Authorization": f"Bearer {KEY}"}).text
        assert client.post("/explanation", json={"pixels": [[1.0]]}).status_code == 401
        assert client.get("/health").status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "Bearer" in page.text and "prompt(" in page.text  # it asks once
        s = scrape(client.get("/metrics").text)  # public by default: Prometheus scrapes without a key
    assert total(s, "glyphlab_requests_total", route="/prediction", status="401") == 4
    private = create_app(logreg_dir, gateway=GatewaySettings(metrics_public=False), api_key=KEY)
    with TestClient(private) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_cors_is_off_unless_origins_are_named(logreg_dir):
    origin = {"Origin": "https://glyphs.example"}
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with TestClient(create_app(logreg_dir)) as client:
        assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
        assert client.options("/prediction", headers=preflight).status_code == 405
    app = create_app(logreg_dir, gateway=GatewaySettings(cors_origins=["https://glyphs.example"]), api_key=KEY)
    with TestClient(app) as client:
        res = client.options("/prediction", headers=preflight)  # a preflight carries no key
        assert res.status_code == 200 and res.headers["access-control-allow-origin"] == "https://glyphs.example"
        assert "authorization" in res.headers["access-control-allow-headers"].lower()
        other = client.options("/prediction", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_key_sources_and_the_open_host_warning(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("GLYPHLAB_API_KEY", raising=False)
    monkeypatch.delenv("GLYPHLAB_API_KEY_FILE", raising=False)
    monkeypatch.delenv("GLYPHLAB_SERVE_GATEWAY", raising=False)
    assert load_api_key() is None
    monkeypatch.setenv("GLYPHLAB_API_KEY", KEY)
    assert load_api_key() == KEY
    f = tmp_path / "key"
    f.write_text("from-the-file-0123456789\n")
    assert load_api_key(f) == "from-the-file-0123456789"  # the file wins
    f.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 16"):
        load_api_key(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_api_key(tmp_path / "missing")
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    assert open_warning("127.0.0.1", None) is None and open_warning("0.0.0.0", KEY) is None
    monkeypatch.delenv("GLYPHLAB_API_KEY")
    assert configure_workers("0.0.0.0", None, [], True, True, 1) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no API key" in err and "--api-key-file" in err
    monkeypatch.setenv("GLYPHLAB_API_KEY", KEY)
    assert configure_workers("0.0.0.0", None, ["https://a.example"], True, False, 1) == KEY
    assert capsys.readouterr().err == ""
    assert json.loads(__import__("os").environ["GLYPHLAB_SERVE_GATEWAY"])["cors_origins"] == ["https://a.example"]


def _get(url: str, key: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_two_workers_metrics_add_up_under_load(logreg_dir, tmp_path: Path):
    """`glyphlab serve --workers 2 --api-key-file`: 80 uploads on 8 threads (each a new connection, spread over
    both workers) while /metrics is scraped; whichever worker answers a scrape reports both workers' counts."""
    # the server's own temporary folder, so that another suite's servers on this machine cannot touch the check
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        serve_command(logreg_dir, port, "--workers", "2", "--no-access-log", "--api-key-file", str(key_file)),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),
        env={**os.environ, "TMPDIR": str(server_tmp)},
    )
    try:
        wait_until_up(
            lambda: _get(f"{base}/health")[0] == 200,
            proc,
            tmp_path / "serve.log",
            120,
            "the server's /health",
            poll=0.2,
        )
        assert _get(f"{base}/model")[0] == 401
        body = png_bytes(drawn_one())
        statuses: list[int] = []
        scrapes: list[str] = []

        def client() -> None:
            for _ in range(10):
                req = urllib.request.Request(
                    f"{base}/prediction",
                    data=body,
                    headers={"Content-Type": "image/png", "Authorization": f"Bearer {KEY}"},
                )
                with urllib.request.urlopen(req, timeout=60) as r:
                    statuses.append(r.status)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            scrapes.append(_get(f"{base}/metrics")[1])
            time.sleep(0.05)
        for t in threads:
            t.join()
        assert statuses == [200] * 80
        for text in scrapes:  # mid-load scrapes parse and never count more than was sent
            assert total(scrape(text), "glyphlab_predictions_total") <= 80
        # the 80 connections went to both workers (the kernel spreads them), so a worker reporting 80 adds up both
        finals = [scrape(_get(f"{base}/metrics")[1]) for _ in range(6)]
        for s in finals:
            assert total(s, "glyphlab_requests_total", route="/prediction", status="200") == 80
            assert total(s, "glyphlab_predictions_total") == 80
            assert total(s, "glyphlab_batch_size_sum") == 80
            assert total(s, "glyphlab_request_duration_seconds_count", route="/prediction") == 80
            assert total(s, "glyphlab_requests_total", route="/model", status="401") == 1
            assert total(s, "glyphlab_requests_in_progress") == 1  # the scrape itself, in the worker answering
    finally:
        stop_server(proc, timeout=20)
    assert not list(server_tmp.glob("glyphlab-metrics-*"))  # the workers' metric files went with the server
