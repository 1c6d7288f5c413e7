"""Declared parameter types and ranges, checked when a model is made (before any data is loaded or trained).

A model's ``defaults`` already say which parameters it takes; its ``param_specs`` say what values each may
hold. A parameter without a spec gets one from its default's type (an int default takes integers, a float
default takes numbers, a bool default takes true/false, a str default takes text, a list default a list), so
most models declare only ranges and the few parameters whose type is wider than their default's
(``svm.gamma`` is ``"scale"`` or a number). A bad value is one :class:`ConfigError` that names the model, the
parameter, what it takes and what arrived — instead of a scikit-learn or torch traceback minutes later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from glyphlab.errors import ConfigError

#: most augmented copies (``tta``) or extra rotations (``tta_rotations``) a prediction may average over; each
#: copy is one more forward pass per image, so a manifest asking for 100,000 would make ``predict`` hang
MAX_TTA = 64


@dataclass(frozen=True)
class Spec:
    """What one parameter accepts. ``kinds`` are names: int, number, bool, str, list, dict, none."""

    kinds: tuple[str, ...]
    low: float | None = None  #: smallest number allowed (inclusive unless ``low_open``)
    high: float | None = None  #: largest number allowed (inclusive unless ``high_open``)
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None  #: the strings allowed, when the parameter takes a string

    def describe(self) -> str:
        parts = []
        for kind in self.kinds:
            if kind == "str" and self.choices:
                parts.append(" | ".join(repr(c) for c in self.choices))
            else:
                parts.append(
                    {
                        "int": "an integer",
                        "number": "a number",
                        "bool": "true or false",
                        "str": "text",
                        "list": "a list",
                        "dict": "a table",
                        "none": "null",
                    }[kind]
                )
        text = " or ".join(parts)
        if self.low is not None or self.high is not None:
            lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
            hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
            text += " " + " and ".join(p for p in (lo, hi) if p)
        return text


def spec(
    *kinds: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Spec:
    return Spec(tuple(kinds), low, high, low_open, high_open, choices)


def inferred_spec(default: Any) -> Spec | None:
    """The spec a parameter gets from its default alone; None (anything goes) for a None default."""
    if isinstance(default, bool):
        return spec("bool")
    if isinstance(default, Integral):
        return spec("int")
    if isinstance(default, Real):
        return spec("number")
    if isinstance(default, str):
        return spec("str")
    if isinstance(default, (list, tuple)):
        return spec("list")
    if isinstance(default, dict):
        return spec("dict")
    return None


def _kind_matches(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, Integral) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if kind == "str":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, (list, tuple))
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "none":
        return value is None
    raise ValueError(f"unknown parameter kind {kind!r}")


def check_value(model: str, key: str, value: Any, s: Spec) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``s.kinds`` within its range or choices."""
    matched = [k for k in s.kinds if _kind_matches(k, value)]
    bad = not matched
    if not bad and isinstance(value, str) and s.choices is not None and value not in s.choices:
        bad = True
    if not bad and matched[0] in ("int", "number"):
        v = float(value)
        if s.low is not None and (v < s.low or (s.low_open and v == s.low)):
            bad = True
        if s.high is not None and (v > s.high or (s.high_open and v == s.high)):
            bad = True
    if bad:
        raise ConfigError(f"model '{model}': {key} must be {s.describe()}, got {value!r}")


def check_params(model: str, params: Mapping[str, Any], defaults: Mapping[str, Any], specs: Mapping[str, Spec]) -> None:
    """Check every given parameter against its declared (or inferred) spec."""
    for key, value in params.items():
        s = specs.get(key) or inferred_spec(defaults.get(key))
        if s is not None:
            check_value(model, key, value, s)


SEED = spec("int", low=0)
POSITIVE = spec("number", low=0, low_open=True)
FRACTION = spec("number", low=0, high=1)

#: the parameters every torch network takes (TrainConfig/AugmentConfig, models/torch/params.py); a subclass adds its own
TORCH_SPECS: dict[str, Spec] = {
    "epochs": spec("int", low=1),
    "batch_size": spec("int", low=1),
    "lr": POSITIVE,
    "optimizer": spec("str", choices=("adamw", "adam", "sgd", "rmsprop", "nadam")),
    "momentum": FRACTION,
    "schedule": spec("str", choices=("onecycle", "cosine", "none")),
    "weight_decay": spec("number", low=0),
    "label_smoothing": spec("number", low=0, high=1, high_open=True),
    "ema": spec("number", low=0, high=1, high_open=True),
    "class_weight": spec("none", "str", "list", choices=("balanced",)),
    "patience": spec("none", "int", low=0),
    "monitor": spec("str", choices=("val_loss", "val_acc")),
    "rotation": spec("number", low=0, high=360),
    "shift": FRACTION,
    "scale": spec("number", "list"),  # a (low, high) zoom pair or a half-width around 1
    "elastic": spec("number", low=0),
    "resample": spec("str", choices=("bilinear", "nearest")),
    "fill": spec("str", choices=("zeros", "border", "reflection")),
    "background_noise": FRACTION,
    "tta": spec("int", low=0, high=MAX_TTA),
    "seed": SEED,
    "device": spec("str"),
    "precision": spec("str", choices=("auto", "bf16", "fp16", "fp32")),
    "init_from": spec("none", "str"),
    "dropout": spec("number", low=0, high=1, high_open=True),
}
