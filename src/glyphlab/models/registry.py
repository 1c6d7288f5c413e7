"""Model registry: a name maps to the module that defines it, and, once that module is imported, to its class.

The registry is lazy: :data:`MODEL_MODULES` names each model's family module, and a family is imported only when
one of its models is built, loaded or asked about (:func:`model_spec`). A batch worker or server of a
scikit-learn model (or of an ONNX export) therefore never imports PyTorch, which the network families import
(1-2 s of CPU and some 400 MB per process). Adding a model is one line in :data:`MODEL_MODULES` and
``@register_model`` on its class.

Capabilities (``uses_validation``, ``data_parallel``, ``onnx_kind``, ``defaults``...) stay declared on the model
classes, read after the family's import, rather than copied into this table: whoever asks what a model can do is
about to build or load it (the import is due anyway), and one declaration cannot drift from a second one here.
Only listing every model (``glyphlab models``) imports every installed family.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

from glyphlab.errors import ConfigError
from glyphlab.extras import EXTRAS, model_extras
from glyphlab.models.base import GlyphModel

_CLASSICAL, _NETS = "glyphlab.models.classical", "glyphlab.models.nets"
#: every model name -> the module whose import registers it (``tests/models/test_registry.py`` checks both agree)
MODEL_MODULES: dict[str, str] = {
    "logreg": _CLASSICAL,
    "svm": _CLASSICAL,
    "pca-svm": _CLASSICAL,
    "random-forest": _CLASSICAL,
    "xgboost": _CLASSICAL,
    "mlp": _NETS,
    "cnn-small": _NETS,
    "cnn-deep": _NETS,
    "resnet-small": _NETS,
    "cnn-fast": "glyphlab.models.cnnfast",
    "rot-cnn": "glyphlab.models.rotcnn",
    "ensemble": "glyphlab.models.ensemble",
    "efficientnet-b0": "glyphlab.models.efficientnet",
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[GlyphModel]
    description: str
    family: str


#: the specs of the models whose family has been imported (importing a family registers its models here)
MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, family: str):
    """Class decorator of a model: ``name`` must be a key of :data:`MODEL_MODULES` naming the class's module."""

    def deco(cls: type[GlyphModel]) -> type[GlyphModel]:
        if MODEL_MODULES.get(name) != cls.__module__:
            raise ConfigError(f"model '{name}' ({cls.__module__}) needs its line in MODEL_MODULES (models/registry.py)")
        cls.name = name
        MODELS[name] = ModelSpec(name, cls, description, family)
        return cls

    return deco


#: third-party modules that only some model families need (their extras' imports, glyphlab/extras.py); torch is the
#: ``glyphlab[torch]`` extra: a server of ONNX exports and scikit-learn/XGBoost models runs without it
OPTIONAL_DEPS = frozenset(module for extra in EXTRAS.values() if extra.models for module in extra.imports)

#: models of optional families beyond the plain networks, and the extra that installs each
OPTIONAL_MODELS = {model: extra for model, extra in model_extras().items() if extra != "torch"}
#: the networks, which need PyTorch (``pip install 'glyphlab[torch]'``)
TORCH_MODELS = EXTRAS["torch"].models


def _import_family(name: str) -> bool:
    """Import the family module of known model ``name``; False when an optional dependency of it is absent."""
    module = MODEL_MODULES[name]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # an optional family whose own module, or whose optional dependency, is absent; anything else is a bug
        if exc.name is None or not (module.startswith(exc.name) or exc.name.split(".")[0] in OPTIONAL_DEPS):
            raise
        return False
    return name in MODELS


def load_builtin_models() -> None:
    """Import every installed family (what listing all models needs); an optional one without its extra is skipped."""
    for name in MODEL_MODULES:
        if name not in MODELS:
            _import_family(name)


def torch_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def missing_extra(name: str) -> str | None:
    """The extra to install for ``name`` when it is an optional model whose family does not import; else None
    (an installed model, or a name that is no model at all). Imports ``name``'s family only."""
    if name not in MODEL_MODULES or name in MODELS or _import_family(name):
        return None
    if name in TORCH_MODELS or (name in OPTIONAL_MODELS and not torch_installed()):
        return "torch"
    return OPTIONAL_MODELS.get(name)


def missing_models() -> dict[str, str]:
    """Optional models this install cannot build, each with the extra that brings it."""
    names = sorted({*OPTIONAL_MODELS, *TORCH_MODELS})
    return {n: extra for n in names if (extra := missing_extra(n))}


def needs_extra_message(name: str, extra: str) -> str:
    return f"model '{name}' needs glyphlab[{extra}], which is not installed: pip install 'glyphlab[{extra}]'"


def model_spec(name: str) -> ModelSpec:
    """The spec (class, description, family) of model ``name``, its family imported on first use; an unknown
    name or a family whose extra is not installed is a :class:`ConfigError` saying what to do."""
    if name in MODELS:
        return MODELS[name]
    extra = missing_extra(name)
    if extra:
        raise ConfigError(needs_extra_message(name, extra))
    if name not in MODELS:
        raise ConfigError(
            f"unknown model '{name}'. Known: {', '.join(sorted(MODEL_MODULES))}. Run `glyphlab models` to list them."
        )
    return MODELS[name]


def find_spec(name: str) -> ModelSpec | None:
    """:func:`model_spec`, or None for an unknown name or a family this install cannot import."""
    try:
        return model_spec(name)
    except ConfigError:
        return None


def create_model(name: str, **params: Any) -> GlyphModel:
    return model_spec(name).cls(**params)


def with_seed(name: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """``params`` with ``seed`` added when model ``name`` takes a seed and ``params`` do not set one: how a run's,
    a search's or an ensemble's seed reaches the models it trains."""
    out = dict(params)
    spec = find_spec(name)
    if spec is not None and "seed" in spec.cls.defaults and "seed" not in out:
        out["seed"] = seed
    return out


def list_models() -> list[ModelSpec]:
    load_builtin_models()
    return [MODELS[k] for k in sorted(MODELS)]


def _defaults(name: str) -> dict[str, Any]:
    """The parameters model ``name`` takes ({} for a name this install cannot build: building it says why)."""
    spec = find_spec(name)
    return spec.cls.defaults if spec is not None else {}


def parse_value(text: str) -> Any:
    """CLI values: JSON when it parses (numbers, booleans, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in {"true", "false"}:
            return low == "true"
        return text


def parse_params(items: list[str], model_names: list[str]) -> dict[str, dict[str, Any]]:
    """``["svm.C=10", "seed=3"]`` -> per-model params. An unprefixed key goes to every model that takes it.

    ``model_names`` are run entries, ``NAME`` or ``LABEL=NAME``; params are keyed by label.
    """
    registry_of = {e.partition("=")[0].strip(): (e.partition("=")[2].strip() or e.strip()) for e in model_names}
    model_names = list(registry_of)
    out: dict[str, dict[str, Any]] = {m: {} for m in model_names}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param '{item}' must look like key=value or model.key=value")
        key, value = item.split("=", 1)
        parsed = parse_value(value)
        if "." in key and key.split(".", 1)[0] in model_names:
            model, key = key.split(".", 1)
            out[model][key] = parsed
            continue
        takers = [m for m in model_names if key in _defaults(registry_of[m])]
        if not takers:
            raise ConfigError(f"--param '{key}' is not a parameter of any of: {', '.join(model_names)}")
        for m in takers:
            out[m][key] = parsed
    return out
