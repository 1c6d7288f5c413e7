"""Search spaces: the TOML file, validated by pydantic (like recipes), and the parameters Optuna samples.

A *space file* declares the parameters to search::

    [search]                      # optional
    model = "svm"                 # the model this space is for (``--model`` may then be omitted)
    description = "..."

    [space.C]
    type = "float"                # choice | int | float
    low = 0.1
    high = 1000.0
    log = true

    [space.optimizer]
    type = "choice"
    values = ["adam", "rmsprop"]

    [fixed]                       # optional: parameters set in every trial
    epochs = 5

Every error names the field it is about (``space.C: 'low' must be < 'high'``).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from glyphlab.errors import ConfigError
from glyphlab.models.registry import model_spec

SPACE_TYPES = ("choice", "int", "float")
JSON_PREFIX = "json:"
BUILTIN_SPACES = "glyphlab.search_spaces"


# -- what Optuna samples --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    values: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False

    def suggest(self, trial) -> Any:
        if self.type == "choice":
            return _decode(trial.suggest_categorical(self.name, [_encode(v) for v in self.values]))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """The finite set of values the grid sampler walks (encoded for Optuna)."""
        if self.type == "choice":
            return [_encode(v) for v in self.values]
        if self.step is None or self.log:
            raise ConfigError(
                f"space.{self.name}: the grid sampler needs a finite set of values: "
                "use type = \"choice\", or give 'step' (without log)"
            )
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step)))
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return _encode(value) in [_encode(v) for v in self.values]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-9
        return True


@dataclass
class SearchSpace:
    params: dict[str, ParamSpec]
    fixed: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    description: str = ""
    source: str = ""

    def suggest(self, trial) -> dict[str, Any]:
        return {name: spec.suggest(trial) for name, spec in self.params.items()}

    def grid(self) -> dict[str, list[Any]]:
        return {name: spec.grid() for name, spec in self.params.items()}

    def fingerprint(self) -> str:
        raw = {"params": {k: asdict(v) for k, v in sorted(self.params.items())}, "fixed": self.fixed}
        return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _encode(value: Any) -> Any:
    """Optuna's categorical values are None/bool/int/float/str: lists and tables travel as JSON strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return JSON_PREFIX + json.dumps(value, sort_keys=True)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(JSON_PREFIX):
        return json.loads(value[len(JSON_PREFIX) :])
    return value


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _decode(v) for k, v in params.items()}


# -- the file, validated -----------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChoiceParam(_Strict):
    type: Literal["choice"]
    values: list[Any]

    @field_validator("values")
    @classmethod
    def _values(cls, values: list[Any]) -> list[Any]:
        if not values:
            raise ValueError("'values' must be a non-empty list")
        encoded = [_encode(v) for v in values]
        if len(set(map(repr, encoded))) != len(encoded):
            raise ValueError("'values' has duplicates")
        return values


def _number(key: str, value: Any, integer: bool) -> float | int:
    """TOML's own number as written (an int ``low`` of a float parameter stays an int: it is in the study's
    fingerprint), refused when it is a bool, a string, a fraction for an int, or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ValueError(f"'{key}' must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"'{key}' must be finite, got {value!r}")
    return value


class _RangeParam(_Strict):
    integer: ClassVar[bool] = False
    low: Any
    high: Any
    step: Any = None
    log: StrictBool = False

    @field_validator("low", "high", "step")
    @classmethod
    def _numbers(cls, value: Any, info) -> Any:
        if value is None and info.field_name == "step":
            return None
        return _number(info.field_name, value, cls.integer)

    @model_validator(mode="after")
    def _range(self):
        low, high, step = self.low, self.high, self.step
        if not low < high:
            raise ValueError(f"'low' must be < 'high' (got low={low!r}, high={high!r})")
        if self.log and low <= 0:
            raise ValueError(f"log = true needs 'low' > 0 (got {low!r})")
        if step is not None:
            if step <= 0:
                raise ValueError(f"'step' must be > 0, got {step!r}")
            if self.log and not (self.integer and step == 1):
                raise ValueError("'step' and log = true cannot be combined")
            if step > high - low:
                raise ValueError(f"'step' ({step!r}) is larger than high - low")
        return self


class IntParam(_RangeParam):
    integer: ClassVar[bool] = True
    type: Literal["int"]


class FloatParam(_RangeParam):
    type: Literal["float"]


ParamTable = Annotated[ChoiceParam | IntParam | FloatParam, Field(discriminator="type")]


class SearchMeta(_Strict):
    model: str | None = None
    description: str = ""


class SpaceFile(_Strict):
    search: SearchMeta = SearchMeta()
    space: dict[str, ParamTable] = {}
    fixed: dict[str, Any] = {}


_ALLOWED_KEYS = {
    "choice": ("type", "values"),
    "int": ("high", "log", "low", "step", "type"),
    "float": ("high", "log", "low", "step", "type"),
}


def _problem(err: dict[str, Any], raw: dict[str, Any], source: str) -> str:
    """One pydantic error as glyphlab says it: the field first (``space.C: ...``)."""
    loc = [str(p) for p in err["loc"]]
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
    if not loc:
        return f"{source}: {msg}"
    if loc[0] == "space" and len(loc) >= 2:
        where, name = f"space.{loc[1]}", loc[1]
        tag = loc[2] if len(loc) > 2 else None
        key = loc[3] if len(loc) > 3 else None
        if kind == "union_tag_not_found":
            return f"{where}: missing 'type' (one of {', '.join(SPACE_TYPES)})"
        if kind == "union_tag_invalid":
            typ = (raw.get("space") or {}).get(name, {}).get("type")
            return f"{where}: unknown type {typ!r} (expected one of {', '.join(SPACE_TYPES)})"
        if kind in ("model_attributes_type", "dict_type", "model_type"):
            return f'{where}: must be a table like {{type = "float", low = 0.1, high = 10}}, got {err["input"]!r}'
        if kind == "extra_forbidden":
            return (
                f"{where}: unknown key(s) {key!r} for type {tag!r} "
                f"(allowed: {', '.join(_ALLOWED_KEYS.get(str(tag), ()))})"
            )
        if kind == "missing":
            return f"{where}: missing '{key}'"
        if kind == "list_type" and key == "values":
            return f"{where}: 'values' must be a non-empty list"
        if kind == "bool_type":
            return f"{where}: '{key}' must be true or false, got {err['input']!r}"
        return f"{where}: {msg}"
    if loc[0] == "space":
        return f"{source}: declares no parameters: add tables like [space.C]"
    if kind == "extra_forbidden" and len(loc) == 1:
        return f"{source}: unknown top-level table(s) {loc[0]} (expected [search], [space.NAME] and [fixed])"
    if loc[0] == "search" and kind == "extra_forbidden":
        return f"search: unknown key(s) {loc[-1]} (allowed: model, description)"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return f"{loc[0]}: must be a table" + (" of parameter = value" if loc[0] == "fixed" else "")
    return f"{'.'.join(loc)}: {msg}"


def _param_spec(name: str, table: ChoiceParam | IntParam | FloatParam) -> ParamSpec:
    if isinstance(table, ChoiceParam):
        return ParamSpec(name, "choice", values=tuple(table.values))
    step = table.step if table.step is not None or table.type == "float" else 1
    return ParamSpec(name, table.type, low=table.low, high=table.high, step=step, log=table.log)


def model_defaults(model: str) -> dict[str, Any]:
    """Every parameter ``model`` takes, with its default (a clear error for an unknown model name)."""
    return dict(model_spec(model).cls.defaults)


def parse_space(raw: dict[str, Any], model: str | None = None, source: str = "") -> SearchSpace:
    """Validate a parsed space file; every error names the field (``space.C: ...``)."""
    source = source or "space file"
    try:
        parsed = SpaceFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(dict.fromkeys(_problem(e, raw, source) for e in exc.errors()))) from None
    declared = parsed.search.model
    if model and declared and model != declared:
        raise ConfigError(f"search.model: this space is for model '{declared}', not '{model}'")
    model = model or declared
    if not model:
        raise ConfigError("no model: pass --model NAME or set model in the space file's [search] table")
    if not parsed.space:
        raise ConfigError(f"{source}: declares no parameters: add tables like [space.C]")
    defaults = model_defaults(model)
    for section, names in (("space", parsed.space), ("fixed", parsed.fixed)):
        for name in names:
            if name not in defaults:
                raise ConfigError(
                    f"{section}.{name}: model '{model}' has no parameter '{name}'; "
                    f"it takes: {', '.join(sorted(defaults))}"
                )
    for name in parsed.fixed:
        if name in parsed.space:
            raise ConfigError(f"fixed.{name}: is also searched in space.{name}; keep one")
    params = {name: _param_spec(name, table) for name, table in parsed.space.items()}
    return SearchSpace(
        params=params, fixed=dict(parsed.fixed), model=model, description=parsed.search.description, source=source
    )


def builtin_spaces() -> dict[str, Path]:
    folder = resources.files(BUILTIN_SPACES)
    return {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def find_space(name_or_path: str | Path) -> Path:
    """A path to a TOML file, or the name of a space shipped in ``glyphlab/search_spaces`` (without .toml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = builtin_spaces()
    stem = p.name[:-5] if p.name.endswith(".toml") else p.name
    if str(p) == p.name and stem in shipped:
        return shipped[stem]
    raise ConfigError(
        f"no space file {str(name_or_path)!r}: pass a TOML file or one of the shipped spaces: "
        f"{', '.join(sorted(shipped))}"
    )


def load_space(name_or_path: str | Path, model: str | None = None) -> SearchSpace:
    path = find_space(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_space(raw, model, source=str(path))
