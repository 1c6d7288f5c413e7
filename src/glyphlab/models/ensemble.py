"""``ensemble``: combine glyphlab models by probability averaging or (weighted) majority vote.

Members come from two places, in this order:

* ``members``: paths of saved glyphlab models (a model folder, its manifest, or a run's ``models/NAME``
  folder). They are already trained: ``fit`` only loads them and checks their classes and input shape.
* ``member_models``: registry names (``["logreg", "svm"]``) that ``fit`` trains on the data it is given,
  with ``member_params`` (``{"svm": {"C": 5}}``) and the ensemble's ``seed``; a name given k times trains k
  members from seeds ``seed``, ``seed + 1``, ... (an average of networks that differ only by their seed).
  A network member gets the
  validation split; classical members are fit on train+val, as in a run.

Saving writes no weights of its own: the folder holds ``manifest.json`` and ``members.json``, which
lists every member's path with the SHA-256 of the member's manifest (that manifest in turn pins the
member's weights). Members trained by the ensemble are saved as ordinary model folders inside it
(``members/0-svm``) and referenced by relative path; loaded members are referenced by absolute path.
Loading checks each member's manifest hash before loading it, so a member that was replaced or changed
after the ensemble was saved is refused. Nothing is pickled.

    glyphlab run --models logreg,svm,ensemble --param 'ensemble.member_models=["logreg","svm"]'
    glyphlab run --models ensemble --param 'ensemble.members=["runs/A/models/svm","runs/B/models/cnn-small"]'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.fileio import sha256_file
from glyphlab.models.base import EpochCallback, GlyphModel, check_images, training_arrays
from glyphlab.models.params import SEED, spec
from glyphlab.models.persistence import MANIFEST, load_model, resolve_model_dir, save_model
from glyphlab.models.registry import create_model, find_spec, register_model, with_seed

MEMBERS_FILE = "members.json"
METHODS = ("average", "vote")


@register_model("ensemble", "probability averaging or majority vote over saved or freshly trained models", "ensemble")
class Ensemble(GlyphModel):
    weights_file = MEMBERS_FILE
    defaults = {
        "members": [],
        "member_models": [],
        "member_params": {},
        "method": "average",
        "weights": None,
        "seed": 0,
    }
    # one path or name may be given as a string; method and weights are checked in _validate_params
    param_specs = {
        "members": spec("list", "str"),
        "member_models": spec("list", "str"),
        "weights": spec("none", "list"),
        "seed": SEED,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._validate_params()
        self.members_: list[GlyphModel] = []
        self.member_sources_: list[dict[str, Any]] = []
        # a network among the members to train wants the validation split (instance override of the ClassVar)
        self.uses_validation = any(_is_net(n) for n in self.params["member_models"])

    def _validate_params(self) -> None:
        p = self.params
        if p["method"] not in METHODS:
            raise ConfigError(f"ensemble: method must be one of {', '.join(METHODS)}, got {p['method']!r}")
        for key in ("members", "member_models"):
            if isinstance(p[key], str):  # a single path or name
                p[key] = [p[key]]
            if not isinstance(p[key], (list, tuple)) or not all(isinstance(x, str) for x in p[key]):
                raise ConfigError(f"ensemble: {key} must be a list of strings, got {p[key]!r}")
            p[key] = list(p[key])
        if not isinstance(p["member_params"], dict):
            raise ConfigError("ensemble: member_params must map a member model name to its parameters")
        unknown = set(p["member_params"]) - set(p["member_models"])
        if unknown:
            raise ConfigError(
                f"ensemble: member_params names {', '.join(sorted(unknown))}, which are not in member_models"
            )
        n = len(p["members"]) + len(p["member_models"])
        if p["weights"] is not None:
            w = p["weights"]
            if not isinstance(w, (list, tuple)) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in w
            ):
                raise ConfigError(f"ensemble: weights must be a list of numbers, got {w!r}")
            if n and len(w) != n:
                raise ConfigError(f"ensemble: {len(w)} weights for {n} members (members first, then member_models)")
            if any(x < 0 for x in w) or not sum(w) > 0:
                raise ConfigError("ensemble: weights must be >= 0 with a positive sum")

    # -- learning ---------------------------------------------------------------------------------
    def _fit(
        self, images, labels, val_images, val_labels, *, run_dir: Path | None, callbacks: Sequence[EpochCallback] = ()
    ) -> None:
        p = self.params
        if not p["members"] and not p["member_models"]:
            raise ConfigError("ensemble: give members (paths of saved models) and/or member_models (names to train)")
        self.members_, self.member_sources_ = [], []
        for path in p["members"]:
            directory = resolve_model_dir(path)
            model = load_model(directory)
            self._check_member(model, str(path))
            self.members_.append(model)
            self.member_sources_.append(
                {"path": str(directory.resolve()), "sha256": _manifest_sha(directory), "model": model.name}
            )
        for i, name in enumerate(p["member_models"]):
            model = create_model(
                name,
                **member_params(
                    name, p["member_params"].get(name, {}), p["seed"], repeat=p["member_models"][:i].count(name)
                ),
            )
            member_dir = run_dir / "members" / f"{i}-{name}" if run_dir is not None else None
            model.fit(
                *training_arrays(model, images, labels, val_images, val_labels),
                classes=self.classes_,
                run_dir=member_dir,
            )
            self.members_.append(model)
            self.member_sources_.append({"path": None, "sha256": None, "model": name})
        if p["members"] and not p["member_models"]:  # only loaded members: take their classes
            self.classes_ = list(self.members_[0].classes_ or [])
            self.input_shape_ = self.members_[0].input_shape_

    def _check_member(self, model: GlyphModel, where: str) -> None:
        if self.classes_ is not None and list(model.classes_ or []) != list(self.classes_):
            if len(model.classes_ or []) != len(self.classes_):
                raise ConfigError(
                    f"ensemble member {where} predicts {len(model.classes_ or [])} classes, "
                    f"the data has {len(self.classes_)}"
                )
            raise ConfigError(f"ensemble member {where} has classes {model.classes_}, the data has {self.classes_}")
        if (
            self.input_shape_ is not None
            and model.input_shape_ is not None
            and tuple(model.input_shape_) != tuple(self.input_shape_)
        ):
            raise ConfigError(
                f"ensemble member {where} takes {tuple(model.input_shape_)} images, "
                f"the data is {tuple(self.input_shape_)}"
            )

    # -- inference --------------------------------------------------------------------------------
    def _weights(self) -> np.ndarray:
        w = self.params["weights"]
        n = len(self.members_)
        w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
        if len(w) != n:
            raise ConfigError(f"ensemble: {len(w)} weights for {n} members")
        return w / w.sum()

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        self.check_fitted()
        if not self.members_:
            raise ConfigError("ensemble has no members: fit it or load a saved one")
        x = check_images(images)
        w = self._weights()
        probas = [np.asarray(m.predict_proba(x), dtype=np.float64) for m in self.members_]
        avg = sum(wi * pi for wi, pi in zip(w, probas))
        if self.params["method"] == "average":
            return avg
        votes = np.zeros_like(avg)
        rows = np.arange(len(x))
        for wi, pi in zip(w, probas):
            votes[rows, pi.argmax(axis=1)] += wi
        # ties between classes are broken by the averaged probabilities (a nudge far below one vote)
        votes += 1e-9 * avg
        return votes / votes.sum(axis=1, keepdims=True)

    # -- persistence ------------------------------------------------------------------------------
    def _save_weights(self, directory: Path) -> list[str]:
        entries = []
        for i, (model, src) in enumerate(zip(self.members_, self.member_sources_)):
            if src["path"] is None:  # trained by the ensemble: saved inside it
                rel = f"members/{i}-{model.name}"
                save_model(model, Path(directory) / rel)
                entries.append({"path": rel, "sha256": _manifest_sha(Path(directory) / rel), "model": model.name})
            else:
                current = _manifest_sha(Path(src["path"]))
                if current != src["sha256"]:
                    raise ModelFileError(f"ensemble member {src['path']} changed since the ensemble loaded it; refit")
                entries.append(dict(src))
        (Path(directory) / MEMBERS_FILE).write_text(json.dumps({"members": entries}, indent=2))
        return [MEMBERS_FILE]

    def _manifest_extra(self) -> dict[str, Any]:
        return {
            "members": [
                {"model": s["model"], "path": s["path"] or f"members/{i}-{s['model']}"}
                for i, s in enumerate(self.member_sources_)
            ]
        }

    def _load_weights(self, directory: Path, manifest: dict[str, Any]) -> None:
        try:
            entries = json.loads((Path(directory) / MEMBERS_FILE).read_text())["members"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{directory / MEMBERS_FILE} is not a valid member list: {exc}") from None
        self.members_, self.member_sources_ = [], []
        for entry in entries:
            rel = Path(entry["path"])
            member_dir = rel if rel.is_absolute() else Path(directory) / rel
            if not (member_dir / MANIFEST).is_file():
                raise ModelFileError(f"ensemble {directory}: member {member_dir} is missing (moved or deleted?)")
            actual = _manifest_sha(member_dir)
            if actual != entry["sha256"]:
                raise ModelFileError(
                    f"ensemble {directory}: member {member_dir} does not match the ensemble's record "
                    f"(manifest SHA-256 {actual[:12]}... != {str(entry['sha256'])[:12]}...): it was replaced or "
                    "retrained after the ensemble was saved; refit the ensemble"
                )
            model = load_model(member_dir)
            self.members_.append(model)
            # members saved inside this folder are written again on the next save; external ones stay referenced
            self.member_sources_.append(
                {
                    "path": str(member_dir) if rel.is_absolute() else None,
                    "sha256": entry["sha256"] if rel.is_absolute() else None,
                    "model": model.name,
                }
            )


def _manifest_sha(directory: Path) -> str:
    return sha256_file(resolve_model_dir(directory) / MANIFEST)


def member_params(name: str, params: dict[str, Any], seed: int, *, repeat: int) -> dict[str, Any]:
    """The params of a member to train: ``params`` with the ensemble's seed (unless they set their own), moved on
    by ``repeat``, the number of earlier members of the same name. ``member_models=["cnn-fast"] * 5`` is then
    five networks from five seeds (seed, seed + 1, ...), not five copies of one."""
    out = with_seed(name, params, seed)
    if repeat and "seed" in out:
        out["seed"] = int(out["seed"]) + repeat
    return out


def _is_net(name: str) -> bool:
    spec = find_spec(name)
    return bool(spec and spec.cls.uses_validation)
