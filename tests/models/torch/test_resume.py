"""A run killed after epoch 2 and resumed from its checkpoint ends exactly like an uninterrupted run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from glyphlab.models.registry import create_model

PARAMS = dict(
    epochs=5,
    batch_size=32,
    lr=3e-3,
    seed=7,
    augment=True,
    rotation=8.0,
    elastic=1.0,
    progress=False,
    width=[8, 16, 16],
    blocks=[0, 1, 0],
    patience=0,
    ema=0.9,
)  # the weight average is resumed too


def _data():
    rng = np.random.default_rng(0)
    n = 160
    y = rng.integers(0, 3, n)
    x = rng.random((n, 12, 12), dtype=np.float32) * 0.3
    for k in range(3):
        x[y == k, 3 * k + 1 : 3 * k + 3, 2:10] += 0.7
    return np.clip(x, 0, 1).astype(np.float32), y


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16: autocast in the forward pass, fp32 weights
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, precision):
    PARAMS = {**globals()["PARAMS"], "precision": precision}
    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    run_dir = tmp_path / "run"
    # the kill: an epoch callback of this script ends the process the moment epoch 2 (and its checkpoint) is done
    code = textwrap.dedent(f"""
        import os
        import numpy as np
        from glyphlab.models.registry import create_model

        def die_after_epoch_2(row):
            if row["epoch"] == 2:
                os._exit(9)

        x = np.load({str(tmp_path / "x.npy")!r}); y = np.load({str(tmp_path / "y.npy")!r})
        m = create_model("resnet-small", **{PARAMS!r})
        m.fit(x[:120], y[:120], x[120:], y[120:], run_dir={str(run_dir)!r}, callbacks=[die_after_epoch_2])
        print("FINISHED")
    """)
    env = {**os.environ, "GLYPHLAB_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert "FINISHED" not in proc.stdout
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2

    old = os.environ.get("GLYPHLAB_NUM_THREADS")
    os.environ["GLYPHLAB_NUM_THREADS"] = "1"
    try:
        resumed = create_model("resnet-small", **PARAMS)
        resumed.fit(x[:120], y[:120], x[120:], y[120:], run_dir=run_dir)
        straight = create_model("resnet-small", **PARAMS)
        straight.fit(x[:120], y[:120], x[120:], y[120:], run_dir=tmp_path / "straight")
    finally:
        if old is None:
            os.environ.pop("GLYPHLAB_NUM_THREADS")
        else:
            os.environ["GLYPHLAB_NUM_THREADS"] = old

    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4, 5]
    for a, b in zip(resumed.history_, straight.history_):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    sa, sb = resumed.module_.state_dict(), straight.module_.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    np.testing.assert_array_equal(resumed.predict_proba(x), straight.predict_proba(x))
    assert (run_dir / "history.csv").exists()
    # a run's train s counts the epochs the killed process trained, not only those after the resume
    from glyphlab.pipeline.run import seconds_before_resume

    assert (resumed.resumed_from_, straight.resumed_from_) == (2, 0)
    first_two = state["history"][0]["seconds"] + state["history"][1]["seconds"]
    assert first_two > 0 and seconds_before_resume(resumed) == pytest.approx(first_two)
    assert seconds_before_resume(straight) == 0.0


def test_checkpoint_of_other_params_is_not_resumed(tmp_path):
    x, y = _data()
    p = {**PARAMS, "epochs": 2, "augment": False}
    create_model("resnet-small", **p).fit(x[:120], y[:120], x[120:], y[120:], run_dir=tmp_path)
    m = create_model("resnet-small", **{**p, "lr": 1e-3})
    m.fit(x[:120], y[:120], x[120:], y[120:], run_dir=tmp_path)
    assert len(m.history_) == 2
    # same params again: the finished checkpoint is reused, nothing is retrained
    again = create_model("resnet-small", **{**p, "lr": 1e-3})
    again.fit(x[:120], y[:120], x[120:], y[120:], run_dir=tmp_path)
    np.testing.assert_array_equal(again.predict_proba(x), m.predict_proba(x))
    assert not list(Path(tmp_path).glob(".checkpoint*"))
