"""A training checkpoint on disk: written atomically after every epoch, read back only by the same run.

One folder (``RUN/models/NAME/checkpoint``): the model, best and EMA states as safetensors, the optimiser's
tensors and every random generator's state in ``state.safetensors``, and the scalars (epoch, step, history,
the optimiser's hyper-parameters, the gradient scaler) in ``state.json``. Nothing is pickled. The folder is
written beside as a temp folder and renamed into place, so a process killed mid-write leaves the previous
checkpoint (or, between the two renames, ``.checkpoint.old``, which is read instead).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import torch
from glyphlab.models.persistence import json_default

#: bumped whenever the layout changes: a checkpoint of another version is ignored (the model retrains)
CHECKPOINT_VERSION = 1
#: the module states a checkpoint may hold, each one safetensors file
STATES = ("model", "best", "ema")

log = logging.getLogger(__name__)


def flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state_dict as tensors (``optim.PARAM.NAME``) and JSON-able scalars and groups."""
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


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    """The optimiser state_dict that :func:`flatten_optimizer` took apart."""
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


def write_checkpoint(
    ckpt_dir: Path,
    *,
    states: dict[str, dict[str, torch.Tensor] | None],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    gens: dict[str, torch.Generator],
    meta: dict[str, Any],
) -> None:
    """Replace the checkpoint in ``ckpt_dir`` atomically. ``states``: the module states by name (see
    :data:`STATES`; ``None`` = absent); ``meta``: the trainer's scalars (fingerprint, epoch, history ...)."""
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=ckpt_dir.parent))
    try:
        for name, state in states.items():
            if state is not None:
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / f"{name}.safetensors")
                )
        opt_tensors, opt_meta = flatten_optimizer(optimizer.state_dict())
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
            **{f"has_{name}": states.get(name) is not None for name in STATES if name != "model"},
            "version": CHECKPOINT_VERSION,
        }
        (tmp / "state.json").write_text(json.dumps(meta, default=json_default))
        _swap_in(tmp, ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, ckpt_dir: Path) -> None:
    """``tmp`` becomes ``ckpt_dir``: the old one is renamed aside first, removed last."""
    old = ckpt_dir.parent / f".{ckpt_dir.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if ckpt_dir.exists():
        ckpt_dir.rename(old)
    tmp.rename(ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint(ckpt_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint's contents (``meta``, ``state`` and each of :data:`STATES`) when it exists, is complete and
    matches ``fingerprint``; else None. A damaged one is removed with a warning: training starts over."""
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
