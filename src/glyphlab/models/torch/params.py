"""The one training-config contract between a network's parameters and the engine.

:class:`~glyphlab.models.torch.loop.TrainConfig` and :class:`~glyphlab.models.torch.augment.AugmentConfig`
are the only place training defaults are written. A network's parameter surface is built from them here
(:func:`training_defaults`), plus the overrides a network class declares in one ``training`` dict
(``cnn-small`` trains 12 epochs at lr 2e-3 with adam, say), plus its architecture parameters; and a model's
params are turned back into a ``TrainConfig`` by :func:`train_config`, with no fallback defaults of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

from glyphlab.models.torch.augment import AugmentConfig
from glyphlab.models.torch.loop import TrainConfig

#: TrainConfig/AugmentConfig fields that are not model parameters: loop internals (``min_delta``,
#: ``eval_batch_size``), the elastic field's smoothing, and ``augment``, which a model takes as a switch
#: (True = train with the augmentation parameters below) rather than as an AugmentConfig
NOT_PARAMETERS = frozenset({"min_delta", "eval_batch_size", "elastic_sigma", "augment"})


def _default(f) -> Any:
    value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return list(value) if isinstance(value, tuple) else value  # params travel as JSON: lists, not tuples


def training_defaults(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every training parameter a network takes, with its default from TrainConfig/AugmentConfig, then
    ``overrides`` (a network's own training defaults; an unknown key is a programming error)."""
    out: dict[str, Any] = {}
    for f in fields(TrainConfig):
        if f.name == "augment":
            out["augment"] = _default(f) is not None
        elif f.name not in NOT_PARAMETERS:
            out[f.name] = _default(f)
    out.update({f.name: _default(f) for f in fields(AugmentConfig) if f.name not in NOT_PARAMETERS})
    unknown = set(overrides or {}) - set(out)
    if unknown:
        raise TypeError(f"training overrides {sorted(unknown)} are not TrainConfig/AugmentConfig parameters")
    out.update(overrides or {})
    return out


def train_config(params: Mapping[str, Any], **overrides: Any) -> TrainConfig:
    """The TrainConfig of a model's params (keys that are not TrainConfig fields are ignored)."""
    names = {f.name for f in fields(TrainConfig)}
    kw = {k: v for k, v in params.items() if k in names and k != "augment"}
    if params.get("augment"):
        kw["augment"] = AugmentConfig.from_params(params)
    kw.update(overrides)
    return TrainConfig(**kw)
