"""Property-based fuzzing of POST /prediction: whatever JSON or bytes arrive, the answer is never a 500."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from serving_helpers import drawn_one, png_bytes

from glyphlab.serving.app import ServeSettings, create_app

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def client(logreg_dir):
    with TestClient(create_app(logreg_dir, ServeSettings(max_bytes=100_000, max_batch=4))) as c:
        yield c


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 0.5, -0.0, 1.0000001, True, False, None]),
)
scalars = st.one_of(numbers, st.text(max_size=5))
row = st.lists(st.one_of(st.floats(0, 1), scalars), min_size=0, max_size=12)
image = st.one_of(st.lists(row, min_size=0, max_size=12), row, scalars)
json_values = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=6), kids, max_size=3)),
    max_leaves=12,
)
bodies = st.one_of(
    st.fixed_dictionaries({"pixels": image}),
    st.fixed_dictionaries({"images": st.lists(image, max_size=6)}),
    st.fixed_dictionaries({"pixels": image}, optional={"images": st.lists(image, max_size=2), "x": json_values}),
    json_values,
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_json_endpoint_never_500(client, body):
    raw = json.dumps(body, allow_nan=True)
    r = client.post("/prediction", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (200, 413, 422), (r.status_code, r.text, raw[:200])
    if r.status_code == 200:
        out = r.json()
        preds = out.get("predictions", [out])
        for p in preds:
            assert all(math.isfinite(v) and 0 <= v <= 1 for v in p["probabilities"].values())


PNG = png_bytes(drawn_one(64))


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.integers(0, len(PNG) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, len(PNG)),
)
def test_damaged_png_never_500(client, flips, cut):
    data = bytearray(PNG[:cut] if cut > 8 else PNG)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    r = client.post("/prediction", content=bytes(data), headers={"content-type": "image/png"})
    assert r.status_code in (200, 400), (r.status_code, r.text)
