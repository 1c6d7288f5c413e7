"""rot-cnn (e2cnn), the rotated-MNIST loaders and `glyphlab robustness`. Small networks keep this quick."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("e2cnn")
import torch  # noqa: E402

from glyphlab.errors import ConfigError  # noqa: E402
from glyphlab.models.registry import create_model  # noqa: E402
from glyphlab.models.rotcnn import work_side  # noqa: E402

TINY = {"widths": [2, 3, 4], "hidden": 16, "progress": False, "batch_size": 64}


def _trained_like(model, shape, n_classes=10):
    """A built network with non-trivial batch-norm statistics (a few train-mode passes), in eval mode."""
    net = model.build_module(shape, n_classes)
    torch.manual_seed(1)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(32, 1, *shape))
    return net.eval()


@pytest.mark.parametrize("n_rot", [4, 8])
def test_rot90_leaves_logits_unchanged_equivariant_and_exported(n_rot):
    model = create_model("rot-cnn", N=n_rot, **TINY)
    net = _trained_like(model, (28, 28))
    model.module_ = net
    exported = model.export_module()
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        ref = net(x)
        ex = exported(x)
        assert torch.allclose(ex, ref, atol=1e-5), (ex - ref).abs().max()
        for k in (1, 2, 3):
            xr = torch.rot90(x, k, dims=(-2, -1))
            for m in (net, exported):
                out = m(xr)
                assert torch.allclose(out, ref, atol=1e-4), (k, (out - ref).abs().max())
    # the logits do depend on the input (not a constant network)
    assert ref.std(0).abs().max() > 1e-4


def test_work_side_is_one_mod_four():
    assert work_side((28, 28)) == 29
    assert work_side((8, 8)) == 21
    assert work_side((29, 29)) == 29
    assert work_side((30, 20)) == 33


def test_fit_save_load_round_trip(tmp_path, digits):
    tr = digits["train"]
    x, y = tr.images[:200], tr.labels[:200]
    model = create_model("rot-cnn", epochs=1, **TINY)
    model.fit(x[:160], y[:160], x[160:], y[160:], classes=digits.classes, run_dir=tmp_path / "run")
    test = digits["test"].images[:50]
    proba = model.predict_proba(test)
    assert proba.shape == (50, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    with torch.no_grad():  # exported (used for inference) == equivariant network
        xt = torch.from_numpy(test)
        assert torch.allclose(model.exported_(xt), model.module_(xt), atol=1e-5)
    model.save(tmp_path / "saved")
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "saved" / "weights.safetensors")).keys()
    assert not any(k.endswith(("sampled_basis", ".filter")) for k in keys)  # derived buffers are not stored
    loaded = create_model("rot-cnn").load(tmp_path / "saved")
    assert np.allclose(loaded.predict_proba(test), proba, atol=1e-6)
    assert np.array_equal(loaded.predict(test), model.predict(test))
    assert loaded.features(test).shape == (50, TINY["hidden"])


def test_onnx_export_of_rot_cnn_matches_the_model(tmp_path, digits):
    ort = pytest.importorskip("onnxruntime")
    from glyphlab.serving.onnx_export import export_onnx

    x, y = digits["train"].images[:120], digits["train"].labels[:120]
    model = create_model("rot-cnn", epochs=1, **TINY).fit(x, y, classes=digits.classes)
    path = export_onnx(model, tmp_path / "rot.onnx")
    test = digits["test"].images[:20]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {sess.get_inputs()[0].name: test})[0]
    np.testing.assert_allclose(got, model.predict_proba(test), atol=1e-4)


def test_tta_rotations_average_the_image_and_its_rotation_between_group_elements(tmp_path, digits):
    from glyphlab.models.torch.augment import rotate
    from glyphlab.serving.onnx_export import OnnxExportError, export_onnx

    x, y = digits["train"].images[:120], digits["train"].labels[:120]
    model = create_model("rot-cnn", N=4, epochs=1, **TINY).fit(x, y, classes=digits.classes)
    test = digits["test"].images[:30]
    plain = model.predict_proba(test)
    turned = rotate(torch.from_numpy(test).unsqueeze(1), torch.full((30,), 45.0)).squeeze(1).numpy()
    model.set_params(tta_rotations=1)  # C4: the copy is turned by half the group's 90-degree step
    tta = model.predict_proba(test)
    np.testing.assert_allclose(tta, (plain + model.set_params(tta_rotations=0).predict_proba(turned)) / 2, atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-4  # the copy changed something
    with pytest.raises(OnnxExportError, match="tta_rotations"):
        export_onnx(model.set_params(tta_rotations=1), tmp_path / "m.onnx")


def test_robustness_command_writes_csv_and_png(tmp_path):
    from typer.testing import CliRunner

    from glyphlab.cli import app
    from glyphlab.pipeline.run import RunConfig, run

    out = run(RunConfig(dataset="digits", models=["logreg"]), tmp_path / "run", report=False)
    result = CliRunner().invoke(app, ["robustness", str(out), "--angles", "0:360:120"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "robustness.csv")))
    assert [r["angle"] for r in rows] == ["0", "120", "240"] and {r["model"] for r in rows} == {"logreg"}
    acc = {r["angle"]: float(r["accuracy"]) for r in rows}
    assert acc["0"] > 0.9 and acc["120"] < acc["0"]
    png = (out / "robustness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    bad = CliRunner().invoke(app, ["robustness", str(out), "--angles", "10:0:5"])
    assert bad.exit_code == 2 and "error" in bad.output


def test_mnist_rot_seed000_loader_with_limit(real_mnist_dir):
    from glyphlab.data import load_dataset

    ds = load_dataset("mnist-rot-seed000", real_mnist_dir, limit=100, download=False)
    info = ds.meta["blur_filter"]
    assert len(ds["test"]) == 100 and len(ds["train"]) == info["kept"] == 100 - info["dropped"]
    assert info["dropped"] >= 1
    assert ds.image_shape == (28, 28) and np.bincount(ds["test"].labels).min() >= 9
    again = load_dataset("mnist-rot-seed000", real_mnist_dir, limit=100, download=False)
    assert np.array_equal(again["test"].images, ds["test"].images)  # seeded, fixed


def test_kernels_set_the_convolution_sizes_and_keep_rot90_invariance():
    model = create_model("rot-cnn", N=8, kernels=[7, 5, 3, 3], **TINY)
    net = _trained_like(model, (28, 28))
    from e2cnn import nn as enn

    assert [m.kernel_size for m in net.modules() if isinstance(m, enn.R2Conv)] == [7, 5, 3, 3]
    model.module_ = net
    exported = model.export_module()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        ref = net(x)
        assert torch.allclose(exported(x), ref, atol=1e-5)
        assert torch.allclose(exported(torch.rot90(x, 1, dims=(-2, -1))), ref, atol=1e-4)
    for bad in ([7, 5, 3], [7, 4, 3, 3], [1, 5, 5, 5]):
        with pytest.raises(ConfigError, match="kernels"):
            create_model("rot-cnn", kernels=bad, **TINY).build_module((28, 28), 10)


class _StopAfter:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, row) -> None:
        if row["epoch"] == self.epoch:
            raise RuntimeError("stop")  # as a kill after the epoch's checkpoint: the run folder is left to resume


def test_same_seed_same_network_and_an_interrupted_fit_resumes_bit_exactly(tmp_path, digits):
    """The loop's guarantees hold for the steerable network (kernels [7, 5, 3, 3], EMA, augmentation)."""
    x, y = digits["train"].images[:96], digits["train"].labels[:96]
    params = dict(TINY, kernels=[7, 5, 3, 3], epochs=3, batch_size=32, ema=0.9, seed=3)
    straight = create_model("rot-cnn", **params).fit(x, y, classes=digits.classes, run_dir=tmp_path / "a")
    again = create_model("rot-cnn", **params).fit(x, y, classes=digits.classes)
    resumed = create_model("rot-cnn", **params)
    with pytest.raises(RuntimeError, match="stop"):
        resumed.fit(x, y, classes=digits.classes, run_dir=tmp_path / "b", callbacks=[_StopAfter(2)])
    resumed.fit(x, y, classes=digits.classes, run_dir=tmp_path / "b")
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3]
    sa = straight.module_.state_dict()
    for other in (again, resumed):
        sb = other.module_.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        np.testing.assert_array_equal(other.predict_proba(x), straight.predict_proba(x))
    for a, b in zip(resumed.history_, straight.history_):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
