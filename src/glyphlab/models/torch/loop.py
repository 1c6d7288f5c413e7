"""The training settings and the arithmetic of a step: what a fit's options resolve to, kept apart from the loop.

:class:`TrainConfig` holds every training setting and its default: optimisers adamw / adam / sgd (momentum,
nesterov) / rmsprop / nadam; per-step schedules onecycle / cosine / none (:func:`lr_at`, a pure function of
the step, so resuming is exact); label smoothing; class weights; an exponential moving average of the weights
(``ema``); early stopping on ``val_loss`` or ``val_acc`` with patience; the seed; the device (CUDA when
available, else CPU); mixed precision (``precision``: bf16 autocast on a CPU or GPU that has bf16, fp16 with a
gradient scaler on a GPU without it; the weights stay fp32).

The loop that uses them is :class:`glyphlab.models.torch.trainer.Trainer` (``train`` there), its checkpoint,
EMA, early stopping, history and progress are callbacks (:mod:`glyphlab.models.torch.callbacks`) and the
checkpoint's files are :mod:`glyphlab.models.torch.checkpoint`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch._dynamo  # noqa: F401  torch.optim imports it lazily in the first optimiser's __init__ (1-10 s here)
import torch.nn as nn
import torch.nn.functional as F
from glyphlab.errors import ConfigError
from glyphlab.models.torch import usable_cores
from glyphlab.models.torch.augment import AugmentConfig

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop", "nadam")
SCHEDULES = ("onecycle", "cosine", "none")
MONITORS = ("val_loss", "val_acc")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclass
class TrainConfig:
    """Every training setting and its default: the one source of the training parameters networks take
    (see :mod:`glyphlab.models.torch.params`)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adamw"
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    #: decay of an exponential moving average of the weights (0 = off; e.g. 0.998 averages over ~500 steps).
    #: The average is what is validated, checkpointed as best, and left in the module at the end.
    ema: float = 0.0
    class_weight: str | Sequence[float] | None = None  #: None, "balanced" or one weight per class
    patience: int | None = None  #: epochs without improvement before stopping; None/0 = never stop early
    monitor: str = "val_loss"
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"
    #: fp32 | bf16 | fp16 | auto: the forward pass (and its loss) under torch.autocast in that type, weights and
    #: optimiser state kept fp32. auto = bf16 on a CPU with avx512_bf16 or AMX or a GPU with bf16, fp16 (with a
    #: gradient scaler) on a GPU without it, else fp32. The default is fp32, so that a seed gives the same weights
    #: whichever CPU a run (or CI) lands on; see resolve_precision
    precision: str = "fp32"
    augment: AugmentConfig | None = None
    progress: bool = True  #: progress events (a bar and one line per epoch where a console observes them)
    eval_batch_size: int = 2048
    # read by the network before and after the loop (TorchModel), not by train():
    #: train on train + val for exactly ``epochs`` epochs (no early stopping, the last epoch is kept): the final
    #: retrain of a protocol whose validation split was used to choose the settings (mnist-rot: all 12,000)
    fit_on_val: bool = False
    init_from: str | None = None  #: path of a saved glyphlab torch model to copy compatible weights from
    freeze_features: bool = False  #: with init_from: train only the classifier head
    #: none | temperature: fit one temperature on the validation split after training (models/calibration.py),
    #: saved in calibration.json and applied by predict_proba, predict/serve and the ONNX export
    calibrate: str = "none"

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer '{self.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        if self.monitor not in MONITORS:
            raise ConfigError(f"monitor '{self.monitor}' is not one of {', '.join(MONITORS)}")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ConfigError("epochs and batch_size must be at least 1")
        if not self.lr > 0:
            raise ConfigError("lr must be positive")
        if not 0.0 <= float(self.ema) < 1.0:
            raise ConfigError(f"ema must be a decay in [0, 1) (0 = off, e.g. 0.998), got {self.ema!r}")
        if isinstance(self.class_weight, str) and self.class_weight != "balanced":
            raise ConfigError("class_weight must be None, 'balanced' or a list of per-class weights")


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    resumed_from: int = 0  #: the epoch a resumed run continued after (0 = fresh start)
    device: str = "cpu"
    precision: str = "fp32"  #: the precision trained in (``auto`` resolved)
    extra: dict[str, Any] = field(default_factory=dict)


# -- device -----------------------------------------------------------------------------------------
def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def configure_threads() -> int:
    """Pick torch's CPU thread count: ``GLYPHLAB_NUM_THREADS`` if set, else every core this process may use.

    The count is fixed, not adapted to the machine's load: float reductions differ with the thread count, so a
    load-dependent choice would make the same seed give different weights and break exact resuming. On a CPU
    that other jobs keep busy, set ``GLYPHLAB_NUM_THREADS=1`` (oversubscribed OpenMP threads are slow).
    """
    n = usable_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (/proc/cpuinfo); empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (avx512_bf16 or AMX), the condition for ``precision=auto`` to pick bf16
    on a CPU. Elsewhere bf16 autocast still runs (and is tested), only emulated and slower."""
    flags = cpu_flags()
    if flags:
        return any(f in flags for f in CPU_BF16_FLAGS)
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # not Linux: ask torch (a private helper)
    return bool(probe is not None and probe())


def resolve_precision(device: torch.device, precision: str) -> str:
    """The precision a run trains in on ``device``: ``fp32``, ``bf16`` or ``fp16`` (``auto`` resolved, see TrainConfig).

    Refused: fp16 on a CPU (no scaler path there; bf16 is the CPU's half type) and bf16 on a GPU without it."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if precision == "auto":
            return "bf16" if bf16 else "fp16"
        if precision == "bf16" and not bf16:
            raise ConfigError(
                f"precision=bf16: this GPU ({torch.cuda.get_device_name(device)}) has no bf16; use fp16 or auto"
            )
        return precision
    if device.type != "cpu":
        return "fp32" if precision == "auto" else precision
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    if precision == "fp16":
        raise ConfigError("precision=fp16 is for GPUs; on a CPU use bf16 (or auto: bf16 where the CPU has it)")
    return precision


AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None = fp32, no autocast)."""
    return AMP_DTYPES[resolve_precision(device, precision)]


# -- optimiser and schedule --------------------------------------------------------------------------
def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    wd = float(cfg.weight_decay)
    lr = float(cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=float(cfg.momentum),
            nesterov=bool(cfg.nesterov) and cfg.momentum > 0,
            weight_decay=wd,
        )
    if cfg.optimizer == "rmsprop":  # Keras defaults: rho 0.9, eps 1e-7
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=wd)
    if cfg.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=lr, weight_decay=wd)
    raise ConfigError(f"unknown optimizer {cfg.optimizer}")


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total``; a pure function, so resuming is exact."""
    base = float(cfg.lr)
    if cfg.schedule == "none" or total <= 1:
        return base
    if cfg.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * step / total))
    # onecycle (as torch.optim.lr_scheduler.OneCycleLR, cosine annealing): lr/25 -> lr over 25 %, then -> lr/25e4
    warm = max(1, int(0.25 * total))
    start, end = base / 25.0, base / 25.0 / 1e4
    if step < warm:
        p = step / warm
        return start + (base - start) * 0.5 * (1 - math.cos(math.pi * p))
    p = (step - warm) / max(1, total - warm)
    return end + (base - end) * 0.5 * (1 + math.cos(math.pi * p))


def class_weights(labels: torch.Tensor, n_classes: int, spec) -> torch.Tensor | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        counts = torch.bincount(labels.cpu(), minlength=n_classes).double()
        w = labels.numel() / (n_classes * counts.clamp(min=1))
        return w.float()
    w = torch.as_tensor(list(spec), dtype=torch.float32)
    if w.numel() != n_classes:
        raise ConfigError(f"class_weight has {w.numel()} values for {n_classes} classes")
    return w


# -- evaluation --------------------------------------------------------------------------------------
@torch.inference_mode()
def loss_and_accuracy(
    module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, amp: torch.dtype | None = None
) -> tuple[float, float]:
    """Mean cross-entropy (unweighted, unsmoothed) and accuracy of ``module`` on (x, y)."""
    was_training = module.training
    module.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
            out = module(xb)
        out = out.float()
        total_loss += float(F.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    module.train(was_training)
    n = max(1, len(x))
    return total_loss / n, correct / n


__all__ = [
    "TrainConfig",
    "TrainResult",
    "loss_and_accuracy",
    "resolve_device",
    "lr_at",
    "resolve_precision",
    "cpu_has_bf16",
]
