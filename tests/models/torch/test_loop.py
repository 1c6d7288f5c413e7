import numpy as np
import pytest
import torch
import torch.nn as nn

from glyphlab.errors import ConfigError
from glyphlab.models.torch.loop import TrainConfig, class_weights, loss_and_accuracy, lr_at
from glyphlab.models.torch.trainer import train


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.random((n, 6, 6), dtype=np.float32) * 0.3
    for k in range(3):  # class k lights up row 2k
        x[y == k, 2 * k, :] += 0.7
    return np.clip(x, 0, 1).astype(np.float32), y


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize("opt", ["adamw", "adam", "sgd", "rmsprop", "nadam"])
def test_optimizers_learn(opt, tmp_path):
    x, y = _data()
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05 if opt == "sgd" else 0.01, optimizer=opt, progress=False)
    res = train(_net(), x[:200], y[:200], x[200:], y[200:], n_classes=3, config=cfg, run_dir=tmp_path)
    assert len(res.history) == 6
    assert res.history[-1]["val_acc"] > 0.9
    assert set(res.history[0]) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert (tmp_path / "history.csv").read_text().count("\n") == 7
    assert not (tmp_path / "learning_curves.png").exists()  # drawn by the report from history.csv, not in training


def test_schedules():
    cfg = TrainConfig(lr=1.0, schedule="onecycle")
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0, abs=1e-3) and lrs[-1] < 1e-3
    cos = [lr_at(s, 100, TrainConfig(lr=1.0, schedule="cosine")) for s in range(100)]
    assert cos[0] == 1.0 and cos[50] == pytest.approx(0.5)
    assert lr_at(77, 100, TrainConfig(lr=0.3, schedule="none")) == 0.3


def test_early_stopping_stops_and_restores_best():
    x, y = _data()
    rng = np.random.default_rng(1)
    y_noise = rng.integers(0, 3, len(y))  # unlearnable labels: val loss stops improving quickly
    cfg = TrainConfig(epochs=60, batch_size=16, lr=0.05, schedule="none", patience=3, progress=False)
    net = _net()
    res = train(net, x[:200], y_noise[:200], x[200:], y_noise[200:], n_classes=3, config=cfg)
    assert res.stopped_early
    assert len(res.history) < 60
    assert len(res.history) == res.best_epoch + 3
    best = min(h["val_loss"] for h in res.history)
    assert res.history[res.best_epoch - 1]["val_loss"] == best


def test_monitor_val_acc_and_label_smoothing_and_class_weights():
    x, y = _data()
    cfg = TrainConfig(
        epochs=4,
        batch_size=32,
        lr=0.01,
        monitor="val_acc",
        label_smoothing=0.1,
        class_weight="balanced",
        progress=False,
    )
    res = train(_net(), x[:200], y[:200], x[200:], y[200:], n_classes=3, config=cfg)
    assert res.best_epoch >= 1
    w = class_weights(torch.tensor([0, 0, 0, 1]), 2, "balanced")
    assert torch.allclose(w, torch.tensor([4 / 6, 2.0]))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16: CPU autocast, native or emulated
def test_seeded_runs_are_identical(precision):
    x, y = _data()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, seed=5, progress=False, precision=precision)
    a, b = _net(), _net()
    train(a, x, y, n_classes=3, config=cfg)
    train(b, x, y, n_classes=3, config=cfg)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_bad_config_is_refused():
    x, y = _data()
    with pytest.raises(ConfigError):
        train(_net(), x, y, n_classes=3, config=TrainConfig(optimizer="lbfgs"))
    with pytest.raises(ConfigError):
        train(_net(), x, y, n_classes=3, config=TrainConfig(monitor="f1"))


def test_callbacks_see_every_row_and_can_stop_training():
    x, y = _data()
    seen = []

    class Stop(Exception):
        pass

    def on_epoch(row):
        seen.append(row["epoch"])
        if row["epoch"] == 2:
            raise Stop  # what a search's pruner does (optuna.TrialPruned)

    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.01, progress=False)
    with pytest.raises(Stop):
        train(_net(), x[:200], y[:200], x[200:], y[200:], n_classes=3, config=cfg, callbacks=[on_epoch])
    assert seen == [1, 2]


def test_ema_is_the_warmed_up_moving_average_of_the_weights():
    """Full-batch steps, constant lr: the kept weights are the average computed by hand from the weights after
    step 1 and step 2 of the same seeded run (decay warmed up: min(d, (1 + t) / (10 + t)))."""
    x, y = _data()

    def weights(epochs, ema):
        net = _net()
        cfg = TrainConfig(epochs=epochs, batch_size=len(x), lr=0.05, schedule="none", ema=ema, progress=False)
        train(net, x, y, n_classes=3, config=cfg)
        return {k: v.clone() for k, v in net.state_dict().items()}

    w0 = {k: v.clone() for k, v in _net().state_dict().items()}
    w1, w2, kept = weights(1, 0.0), weights(2, 0.0), weights(2, 0.9)
    for k in w0:
        e1 = w0[k] * (2 / 11) + w1[k] * (9 / 11)
        e2 = e1 * (3 / 12) + w2[k] * (9 / 12)
        torch.testing.assert_close(kept[k], e2, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(kept[k], w2[k])


def test_ema_average_is_what_is_validated_and_kept():
    x, y = _data()
    net = _net()
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05, schedule="none", ema=0.95, patience=0, progress=False)
    res = train(net, x[:200], y[:200], x[200:], y[200:], n_classes=3, config=cfg)
    xv, yv = torch.as_tensor(x[200:]).unsqueeze(1), torch.as_tensor(y[200:])
    loss, acc = loss_and_accuracy(net, xv, yv, 2048)
    best = res.history[res.best_epoch - 1]
    assert loss == pytest.approx(best["val_loss"], rel=1e-5) and acc == best["val_acc"]
    with pytest.raises(ConfigError, match="ema must be a decay"):
        train(_net(), x, y, n_classes=3, config=TrainConfig(ema=1.0))
