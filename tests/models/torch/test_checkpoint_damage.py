"""A damaged checkpoint must not block resuming: it is discarded with a warning and the model retrained."""

import logging

import numpy as np
import torch

from glyphlab.models.registry import create_model

PARAMS = dict(epochs=2, batch_size=32, lr=3e-3, seed=7, progress=False, width=[8, 8, 8], blocks=[0, 0, 0], patience=0)


def _data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    x = rng.random((120, 12, 12), dtype=np.float32) * 0.3
    for k in range(3):
        x[y == k, 3 * k + 1 : 3 * k + 3, 2:10] += 0.7
    return np.clip(x, 0, 1).astype(np.float32), y


def test_a_corrupt_checkpoint_is_discarded_and_the_model_retrained(tmp_path, caplog):
    x, y = _data()
    create_model("resnet-small", **PARAMS).fit(x[:90], y[:90], x[90:], y[90:], run_dir=tmp_path / "run")
    damaged = tmp_path / "run" / "checkpoint" / "model.safetensors"
    damaged.write_bytes(b"\x80\x04not safetensors at all")  # e.g. a disk that filled up, or a planted file
    with caplog.at_level(logging.WARNING, logger="glyphlab.models.torch.checkpoint"):
        again = create_model("resnet-small", **PARAMS)
        again.fit(x[:90], y[:90], x[90:], y[90:], run_dir=tmp_path / "run")
    assert any("checkpoint" in r.getMessage() and "discarded" in r.getMessage() for r in caplog.records)
    assert [h["epoch"] for h in again.history_] == [1, 2]  # trained again, not resumed from the damaged state
    straight = create_model("resnet-small", **PARAMS)
    straight.fit(x[:90], y[:90], x[90:], y[90:], run_dir=tmp_path / "straight")
    sa, sb = again.module_.state_dict(), straight.module_.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
