"""The one training loop every glyphlab torch network uses.

Data is held in memory as tensors on the training device; an epoch indexes a seeded permutation and
slices batches (no DataLoader, no per-sample Python). Features: optimisers adamw / adam / sgd (momentum,
nesterov) / rmsprop / nadam; per-step schedules onecycle / cosine / none; label smoothing; class weights;
an exponential moving average of the weights (``ema``: validated, kept and returned in place of the raw ones);
early stopping on ``val_loss`` or ``val_acc`` with patience and restoration of the best state; seeded and
repeatable; mixed precision (``precision``: bf16 autocast on a CPU or GPU that has bf16, fp16 with a gradient
scaler on a GPU without it; the weights stay fp32); CUDA when available, else CPU; a Rich progress bar; history.csv in
``run_dir`` (the report draws the learning curves from it, outside the timed training).

Resumable: with a ``run_dir`` a checkpoint is written after every epoch into ``run_dir/checkpoint``
atomically (a temp folder, then a rename). Tensors (model, optimiser state, best state, RNG states) go to
safetensors, scalars and history to JSON; nothing is pickled. Calling :func:`train` again with the same
run_dir and the same fingerprint resumes after the last finished epoch and ends with exactly the same
weights as an uninterrupted run.

Progress and pruning reach the loop as explicit ``callbacks``: each is called with an epoch's history row once
the epoch is over (its checkpoint written); an exception one raises (a search's ``optuna.TrialPruned``) ends
training there.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import torch
import torch._dynamo  # noqa: F401  torch.optim imports it lazily in the first optimiser's __init__ (1-10 s here)
import torch.nn as nn
import torch.nn.functional as F
from glyphlab.errors import ConfigError
from glyphlab.fileio import write_csv
from glyphlab.models.base import EpochCallback
from glyphlab.models.files import CHECKPOINT, HISTORY
from glyphlab.models.persistence import json_default
from glyphlab.models.torch import usable_cores
from glyphlab.models.torch.augment import AugmentConfig, augment_batch

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop", "nadam")
SCHEDULES = ("onecycle", "cosine", "none")
MONITORS = ("val_loss", "val_acc")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
CHECKPOINT_VERSION = 1

log = logging.getLogger(__name__)


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
    progress: bool = True  #: Rich progress bar and one line per epoch
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


# -- checkpoint ---------------------------------------------------------------------------------------
def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    groups = json.loads(
        json.dumps(opt_state["param_groups"], default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    )
    return tensors, {"scalars": scalars, "param_groups": groups}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any], device) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("optim."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def _state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class _EMA:
    """ema <- decay * ema + (1 - decay) * current, for every float tensor of the state (weights and BatchNorm
    statistics alike); integer buffers (BatchNorm's batch counter) are copied.

    The pairs (average, live tensor) are collected once: the optimiser and ``load_state_dict`` update the live
    tensors in place, so a step is one fused ``_foreach_lerp_`` instead of a fresh ``state_dict()`` and a
    Python loop over every tensor."""

    def __init__(self, state: dict[str, torch.Tensor], module: nn.Module) -> None:
        self.state = state
        self.rebind(module)

    def rebind(self, module: nn.Module) -> None:
        live = module.state_dict(keep_vars=True)
        floats = [k for k, e in self.state.items() if e.is_floating_point()]
        self.avg = [self.state[k] for k in floats]
        self.cur = [live[k].detach() for k in floats]
        self.ints = [(self.state[k], live[k]) for k, e in self.state.items() if not e.is_floating_point()]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        torch._foreach_lerp_(self.avg, self.cur, 1.0 - decay)
        for e, v in self.ints:
            e.copy_(v)


def _ema_decay(decay: float, step: int) -> float:
    """The decay after ``step`` optimiser steps, warmed up as in TensorFlow's ExponentialMovingAverage so the
    first steps' (random) weights do not linger in the average."""
    return min(decay, (1.0 + step) / (10.0 + step))


def _write_checkpoint(
    ckpt_dir: Path,
    *,
    module,
    optimizer,
    best_state,
    scaler,
    gens: dict[str, torch.Generator],
    meta: dict[str, Any],
    ema_state: dict[str, torch.Tensor] | None = None,
) -> None:
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=ckpt_dir.parent))
    try:
        for name, state in (("model", module.state_dict()), ("best", best_state), ("ema", ema_state)):
            if state is not None:
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / f"{name}.safetensors")
                )
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        rng = {"torch": torch.get_rng_state()}
        for name, g in gens.items():
            rng[f"gen.{name}"] = g.get_state()
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        save_file({**opt_tensors, **{f"rng.{k}": v for k, v in rng.items()}}, str(tmp / "state.safetensors"))
        meta = {
            **meta,
            "optimizer": opt_meta,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "has_best": best_state is not None,
            "has_ema": ema_state is not None,
            "version": CHECKPOINT_VERSION,
        }
        (tmp / "state.json").write_text(json.dumps(meta, default=json_default))
        old = ckpt_dir.parent / f".{ckpt_dir.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if ckpt_dir.exists():
            ckpt_dir.rename(old)
        tmp.rename(ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_checkpoint(ckpt_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint's contents when it exists, is complete and matches ``fingerprint``; else None."""
    if not ckpt_dir.is_dir():
        old = ckpt_dir.parent / f".{ckpt_dir.name}.old"  # killed between the two renames
        if old.is_dir():
            ckpt_dir = old
        else:
            return None
    try:
        meta = json.loads((ckpt_dir / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (
        not isinstance(meta, dict)
        or meta.get("version") != CHECKPOINT_VERSION
        or meta.get("fingerprint") != fingerprint
    ):
        return None
    try:
        return {
            "meta": meta,
            "model": load_file(str(ckpt_dir / "model.safetensors")),
            "state": load_file(str(ckpt_dir / "state.safetensors")),
            "best": load_file(str(ckpt_dir / "best.safetensors")) if meta.get("has_best") else None,
            "ema": load_file(str(ckpt_dir / "ema.safetensors")) if meta.get("has_ema") else None,
        }
    except (SafetensorError, OSError, ValueError) as exc:
        # a damaged checkpoint must not block resuming: drop it and train from the start (same result, more time)
        log.warning(
            "warning: the checkpoint in %s is unreadable (%s: %s); discarded, training from the start",
            ckpt_dir,
            type(exc).__name__,
            (str(exc).splitlines() or [""])[0][:160],
        )
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        return None


# -- outputs --------------------------------------------------------------------------------------------
HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def write_history(history: list[dict[str, float]], run_dir: Path) -> None:
    write_csv(
        run_dir / HISTORY,
        [{k: ("" if row.get(k) is None else row.get(k)) for k in HISTORY_FIELDS} for row in history],
        columns=list(HISTORY_FIELDS),
    )


# -- the loop ---------------------------------------------------------------------------------------------
def _to_tensor(images, labels, device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return x.to(device), y.to(device)


def train(
    module: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    *,
    n_classes: int,
    config: TrainConfig,
    run_dir: str | Path | None = None,
    fingerprint: str = "",
    parameters: Sequence[nn.Parameter] | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> TrainResult:
    """Train ``module`` in place on images (N, H, W) or (N, C, H, W) in [0, 1] and integer labels.

    ``parameters`` restricts what is optimised (e.g. only the head when features are frozen); the default
    is every parameter that requires grad. ``fingerprint`` identifies the run (parameters + data) so a
    checkpoint in ``run_dir`` is only resumed by the same run. On return the module holds the best state by
    ``config.monitor`` (when there is validation data) and sits on the training device in eval mode.
    ``callbacks`` are called with every finished epoch's history row, after its checkpoint is written.
    """
    cfg = config
    cfg.validate()
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads()
    precision = resolve_precision(device, cfg.precision)
    amp = AMP_DTYPES[precision]
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    # a checkpoint is resumed only in the precision it was written in (``auto`` can resolve differently elsewhere)
    fingerprint = f"{fingerprint}|{precision}" if precision != "fp32" else fingerprint

    x, y = _to_tensor(images, labels, device)
    has_val = val_images is not None and val_labels is not None and len(val_images) > 0
    if has_val:
        xv, yv = _to_tensor(val_images, val_labels, device)
    monitor = cfg.monitor if has_val else "train_loss"
    higher_better = monitor == "val_acc"

    module.to(device)
    params = list(parameters) if parameters is not None else [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every parameter is frozen")
    optimizer = make_optimizer(params, cfg)
    weight = class_weights(y, n_classes, cfg.class_weight)
    if weight is not None:
        weight = weight.to(device)

    n = len(x)
    bs = min(int(cfg.batch_size), n)
    steps_per_epoch = math.ceil(n / bs)
    total_steps = int(cfg.epochs) * steps_per_epoch
    shuffle_gen = torch.Generator(device="cpu").manual_seed(int(cfg.seed))
    aug_gen = torch.Generator(device=device).manual_seed(int(cfg.seed) + 1)
    gens = {"shuffle": shuffle_gen, "augment": aug_gen}
    aug_cfg = cfg.augment if (cfg.augment is not None and cfg.augment.active) else None

    history: list[dict[str, float]] = []
    best_value = -math.inf if higher_better else math.inf
    best_epoch, bad_epochs, start_epoch, step = 0, 0, 0, 0
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early = False
    ema_decay = float(cfg.ema or 0.0)
    ema_state = _state_tensors(module) if ema_decay > 0 else None
    ema = None

    run_path = Path(run_dir) if run_dir is not None else None
    ckpt_dir = run_path / CHECKPOINT if run_path is not None else None
    resumed_from = 0
    if ckpt_dir is not None:
        ck = _read_checkpoint(ckpt_dir, fingerprint)
        if ck is not None:
            meta = ck["meta"]
            module.load_state_dict({k: v.to(device) for k, v in ck["model"].items()}, strict=True)
            opt_state = _unflatten_optimizer(ck["state"], meta["optimizer"], device)
            optimizer.load_state_dict(opt_state)
            if scaler is not None and meta.get("scaler"):
                scaler.load_state_dict(meta["scaler"])
            torch.set_rng_state(ck["state"]["rng.torch"])
            for name, g in gens.items():
                g.set_state(ck["state"][f"rng.gen.{name}"])
            if "rng.cuda" in ck["state"] and torch.cuda.is_available():
                torch.cuda.set_rng_state(ck["state"]["rng.cuda"])
            best_state = {k: v.to(device) for k, v in ck["best"].items()} if ck["best"] is not None else None
            if ema_state is not None and ck["ema"] is not None:
                ema_state = {k: v.to(device) for k, v in ck["ema"].items()}
            history = meta["history"]
            best_value, best_epoch, bad_epochs = meta["best_value"], meta["best_epoch"], meta["bad_epochs"]
            start_epoch, step, stopped_early = meta["epoch"], meta["step"], meta["stopped_early"]
            resumed_from = start_epoch

    if ema_state is not None:
        ema = _EMA(ema_state, module)
    progress = None
    if cfg.progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            transient=True,
            auto_refresh=False,
        )  # redrawn at our updates: no render thread contending for the GIL
        progress.start()
        if resumed_from:
            progress.console.print(f"[dim]resuming from the checkpoint after epoch {resumed_from}[/dim]")

    try:
        epoch = start_epoch
        while epoch < int(cfg.epochs) and not stopped_early:
            epoch += 1
            t0 = time.perf_counter()
            module.train()
            perm = torch.randperm(n, generator=shuffle_gen).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            task = None
            if progress is not None:
                task = progress.add_task("train", total=steps_per_epoch, epoch=f"{epoch}/{cfg.epochs}", stats="")
            drawn = time.perf_counter()  # the bar is redrawn at most 4 times a second
            for b in range(steps_per_epoch):
                idx = perm[b * bs : (b + 1) * bs]
                xb, yb = x[idx], y[idx]
                if aug_cfg is not None:
                    xb = augment_batch(xb, aug_cfg, aug_gen)
                lr = lr_at(step, total_steps, cfg)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    out = module(xb)
                    loss = F.cross_entropy(out.float(), yb, weight=weight, label_smoothing=float(cfg.label_smoothing))
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                step += 1
                if ema is not None:
                    ema.update(_ema_decay(ema_decay, step))
                with torch.no_grad():
                    loss_sum += loss.detach() * len(idx)
                    correct += (out.argmax(1) == yb).sum()
                if task is not None and (b == steps_per_epoch - 1 or time.perf_counter() - drawn > 0.25):
                    drawn = time.perf_counter()
                    seen = min(n, (b + 1) * bs)
                    progress.update(
                        task,
                        completed=b + 1,
                        stats=f"loss {float(loss_sum) / seen:.4f} acc {int(correct) / seen:.4f} lr {lr:.2e}",
                        refresh=True,
                    )
            row: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": float(loss_sum) / n,
                "train_acc": int(correct) / n,
                "val_loss": None,
                "val_acc": None,
                "lr": lr_at(max(0, step - 1), total_steps, cfg),
            }
            if has_val:
                if ema_state is not None:  # validate the average: it is what will be kept
                    live = _state_tensors(module)
                    module.load_state_dict(ema_state)
                row["val_loss"], row["val_acc"] = loss_and_accuracy(module, xv, yv, cfg.eval_batch_size, amp)
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            if task is not None:
                progress.remove_task(task)

            value = row[monitor]
            improved = (value > best_value + cfg.min_delta) if higher_better else (value < best_value - cfg.min_delta)
            if improved:
                best_value, best_epoch, bad_epochs = value, epoch, 0
                if has_val:
                    best_state = _state_tensors(module)
            else:
                bad_epochs += 1
                if cfg.patience and bad_epochs >= int(cfg.patience):
                    stopped_early = True
            if has_val and ema_state is not None:
                module.load_state_dict(live)  # training goes on from the raw weights
            if progress is not None:
                val = f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}" if has_val else ""
                mark = " *" if improved else ""
                progress.console.print(
                    f"epoch {epoch:>3}/{cfg.epochs}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}{val}"
                    f"  lr {row['lr']:.2e}  {row['seconds']:.1f}s{mark}"
                    + ("  [yellow]early stop[/yellow]" if stopped_early else "")
                )
            if ckpt_dir is not None:
                _write_checkpoint(
                    ckpt_dir,
                    module=module,
                    optimizer=optimizer,
                    best_state=best_state,
                    scaler=scaler,
                    gens=gens,
                    meta={
                        "fingerprint": fingerprint,
                        "epoch": epoch,
                        "step": step,
                        "history": history,
                        "best_value": best_value,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "stopped_early": stopped_early,
                    },
                    ema_state=ema_state,
                )
                write_history(history, run_path)
            for callback in callbacks:  # e.g. a search's pruner; an exception it raises ends training
                callback(row)
    finally:
        if progress is not None:
            progress.stop()

    if best_state is not None:
        module.load_state_dict(best_state)
    elif ema_state is not None:
        module.load_state_dict(ema_state)
    module.eval()
    if run_path is not None:
        write_history(history, run_path)
    return TrainResult(
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        device=str(device),
        precision=precision,
    )


__all__ = [
    "TrainConfig",
    "TrainResult",
    "EpochCallback",
    "train",
    "loss_and_accuracy",
    "resolve_device",
    "lr_at",
    "resolve_precision",
    "cpu_has_bf16",
    "write_history",
    "asdict",
]
