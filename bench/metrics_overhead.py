"""CPU per POST /prediction through the whole ASGI stack, /metrics on and off, in one process (run by hand).

    python bench/metrics_overhead.py MODEL

Alternating rounds of 400 sequential requests (a 64x64 PNG, micro-batching off) after 50 warm-up requests each;
prints the median CPU microseconds per request of 5 rounds.
"""

import asyncio
import io
import sys
import time

import numpy as np
from PIL import Image

from glyphlab.serving.app import ServeSettings, create_app
from glyphlab.serving.gateway import GatewaySettings

model = sys.argv[1]
im = Image.fromarray((np.eye(28)[::-1] * 255).astype("uint8")).resize((64, 64))
buf = io.BytesIO()
im.save(buf, "PNG")
body = buf.getvalue()
apps = {
    "metrics on": create_app(model, ServeSettings(micro_batch=1)),
    "metrics off": create_app(model, ServeSettings(micro_batch=1), gateway=GatewaySettings(metrics=False)),
}
scope = {
    "type": "http",
    "method": "POST",
    "path": "/prediction",
    "raw_path": b"/prediction",
    "query_string": b"",
    "headers": [(b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())],
    "http_version": "1.1",
    "scheme": "http",
    "server": ("t", 80),
    "client": ("c", 1),
    "root_path": "",
}


async def one(app):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    status = []

    async def send(m):
        if m["type"] == "http.response.start":
            status.append(m["status"])

    await app(dict(scope), receive, send)
    assert status == [200], status


async def main():
    for app in apps.values():
        for _ in range(50):
            await one(app)
    res = {k: [] for k in apps}
    for _ in range(5):
        for name, app in apps.items():
            t = time.process_time()
            for _ in range(400):
                await one(app)
            res[name].append((time.process_time() - t) / 400 * 1e6)
    for name, v in res.items():
        print(f"{name}: median {np.median(v):.0f} us CPU per request (rounds {[round(x) for x in v]})")


asyncio.run(main())
