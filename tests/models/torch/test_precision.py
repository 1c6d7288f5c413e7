"""Mixed precision (issue 31): bf16 autocast in the loop on any CPU PyTorch runs it on (emulated where the CPU has
no bf16: correctness only, no speed expectation), the weights and the export staying fp32, and ``auto`` resolved
by the machine's flags."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from glyphlab.errors import ConfigError
from glyphlab.models.registry import create_model
from glyphlab.models.torch import loop
from glyphlab.models.torch.loop import TrainConfig, resolve_precision
from glyphlab.models.torch.trainer import train

CPU = torch.device("cpu")


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.random((n, 12, 12), dtype=np.float32) * 0.3
    for k in range(3):
        x[y == k, 3 * k + 1 : 3 * k + 3, 2:10] += 0.7
    return np.clip(x, 0, 1).astype(np.float32), y


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 12 * 12, 3)
    )


def test_resolve_precision_on_a_cpu(monkeypatch):
    assert resolve_precision(CPU, "fp32") == "fp32"
    assert resolve_precision(CPU, "bf16") == "bf16"
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: True)
    assert resolve_precision(CPU, "auto") == "bf16"
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: False)  # a Zen 3 CI machine: auto stays fp32
    assert resolve_precision(CPU, "auto") == "fp32"
    with pytest.raises(ConfigError, match="fp16 is for GPUs"):
        resolve_precision(CPU, "fp16")
    with pytest.raises(ConfigError, match="precision 'half'"):
        TrainConfig(precision="half").validate()
    assert TrainConfig().precision == "fp32"  # the default: the same weights for a seed on every CPU


def test_cpu_has_bf16_reads_the_flags(monkeypatch):
    monkeypatch.setattr(loop, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert loop.cpu_has_bf16()
    monkeypatch.setattr(loop, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni"})
    assert not loop.cpu_has_bf16()


def test_bf16_runs_the_forward_in_bf16_and_keeps_fp32_weights():
    x, y = _data()
    net = _net()
    seen = []
    net[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype) if m.training else None)
    res = train(net, x, y, n_classes=3, config=TrainConfig(epochs=1, batch_size=32, precision="bf16", progress=False))
    assert res.precision == "bf16" and seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in net.buffers())


def test_bf16_gives_other_weights_than_fp32():
    """Why the default stays fp32: the same seed trains other weights in bf16 (determinism within a precision is
    test_loop.py's test_seeded_runs_are_identical[bf16])."""
    x, y = _data()
    cfg = dict(epochs=2, batch_size=32, lr=0.01, seed=5, progress=False)
    a, c = _net(), _net()
    train(a, x, y, n_classes=3, config=TrainConfig(precision="bf16", **cfg))
    train(c, x, y, n_classes=3, config=TrainConfig(precision="fp32", **cfg))
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_bf16_model_saves_fp32_weights_records_its_precision_and_exports(tmp_path):
    pytest.importorskip("onnxruntime")
    from safetensors.torch import load_file

    from glyphlab.models.persistence import load_model
    from glyphlab.serving.onnx_export import export_onnx

    x, y = _data()
    m = create_model("cnn-fast", epochs=1, batch_size=32, precision="bf16", progress=False, width=[4, 8, 8])
    m.fit(x[:120], y[:120], x[120:], y[120:])
    saved = m.save(tmp_path / "m")
    assert all(t.dtype in (torch.float32, torch.int64) for t in load_file(str(saved / "weights.safetensors")).values())
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["extra"]["precision"] == "bf16" and manifest["params"]["precision"] == "bf16"
    again = load_model(saved)
    assert again.precision_ == "bf16"
    np.testing.assert_array_equal(again.predict_proba(x), m.predict_proba(x))  # inference is fp32, as before
    export_onnx(saved)  # checks the graph against the model (max_abs_diff) as for an fp32 model
    sidecar = json.loads((saved / "model.onnx.json").read_text())
    assert sidecar["input"]["dtype"] == "float32" and sidecar["max_abs_diff"] < 1e-4


def test_a_checkpoint_is_resumed_only_in_its_own_precision(tmp_path, monkeypatch):
    """``auto`` can resolve differently on another machine: its checkpoint is then retrained, not mixed."""
    x, y = _data()
    cfg = dict(epochs=1, batch_size=32, progress=False)
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: True)
    first = train(
        _net(), x, y, n_classes=3, config=TrainConfig(precision="auto", **cfg), run_dir=tmp_path, fingerprint="f"
    )
    assert first.precision == "bf16"
    again = train(
        _net(), x, y, n_classes=3, config=TrainConfig(precision="auto", **cfg), run_dir=tmp_path, fingerprint="f"
    )
    assert again.resumed_from == 1  # same machine: the finished checkpoint is reused
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: False)
    other = train(
        _net(), x, y, n_classes=3, config=TrainConfig(precision="auto", **cfg), run_dir=tmp_path, fingerprint="f"
    )
    assert other.precision == "fp32" and other.resumed_from == 0
