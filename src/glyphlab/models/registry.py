"""Model registry: a name maps to a model class. Adding a model is one module and one line below."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

from glyphlab.errors import ConfigError
from glyphlab.extras import EXTRAS, model_extras
from glyphlab.models.base import GlyphModel

#: modules whose import registers models; a new family adds one line here
BUILTIN_MODULES = [
    "glyphlab.models.classical",
    "glyphlab.models.nets",
    "glyphlab.models.cnnfast",
    "glyphlab.models.rotcnn",
    "glyphlab.models.ensemble",
    "glyphlab.models.efficientnet",
]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[GlyphModel]
    description: str
    family: str


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, family: str):
    def deco(cls: type[GlyphModel]) -> type[GlyphModel]:
        cls.name = name
        MODELS[name] = ModelSpec(name, cls, description, family)
        return cls

    return deco


_loaded = False


def load_builtin_models() -> None:
    """Import every family of BUILTIN_MODULES once (importing registers them), skipping an optional family whose
    extra is not installed. Called by whatever needs the full registry (create_model, load_model, recipes)."""
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # an optional family whose own module, or whose optional dependency, is absent
            if exc.name is None or not (module.startswith(exc.name) or exc.name in OPTIONAL_DEPS):
                raise
    _loaded = True


#: third-party modules that only some model families need (their extras' imports, glyphlab/extras.py); torch is the
#: ``glyphlab[torch]`` extra: a server of ONNX exports and scikit-learn/XGBoost models runs without it
OPTIONAL_DEPS = frozenset(module for extra in EXTRAS.values() if extra.models for module in extra.imports)

#: models of optional families beyond the plain networks, and the extra that installs each
OPTIONAL_MODELS = {model: extra for model, extra in model_extras().items() if extra != "torch"}
#: the networks, which need PyTorch (``pip install 'glyphlab[torch]'``)
TORCH_MODELS = EXTRAS["torch"].models


def torch_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def missing_extra(name: str) -> str | None:
    """The extra to install for ``name`` when it is an optional model whose family did not import; else None."""
    load_builtin_models()
    if name in MODELS:
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


def create_model(name: str, **params: Any) -> GlyphModel:
    load_builtin_models()
    extra = missing_extra(name)
    if extra:
        raise ConfigError(needs_extra_message(name, extra))
    if name not in MODELS:
        raise ConfigError(
            f"unknown model '{name}'. Known: {', '.join(sorted(MODELS))}. Run `glyphlab models` to list them."
        )
    return MODELS[name].cls(**params)


def with_seed(name: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """``params`` with ``seed`` added when model ``name`` takes a seed and ``params`` do not set one: how a run's,
    a search's or an ensemble's seed reaches the models it trains."""
    load_builtin_models()
    out = dict(params)
    if name in MODELS and "seed" in MODELS[name].cls.defaults and "seed" not in out:
        out["seed"] = seed
    return out


def list_models() -> list[ModelSpec]:
    load_builtin_models()
    return [MODELS[k] for k in sorted(MODELS)]


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
    load_builtin_models()
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
        takers = [m for m in model_names if registry_of[m] in MODELS and key in MODELS[registry_of[m]].cls.defaults]
        if not takers:
            raise ConfigError(f"--param '{key}' is not a parameter of any of: {', '.join(model_names)}")
        for m in takers:
            out[m][key] = parsed
    return out
