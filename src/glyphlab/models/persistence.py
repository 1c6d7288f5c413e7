"""Saving and loading models without pickle.

A saved model is a folder: ``manifest.json`` (what it is, its parameters, classes, input shape, the
library versions that made it and the SHA-256 of every weights file) beside the weights in a format that
cannot run code when read (skops for scikit-learn, safetensors for torch, XGBoost's own JSON, ONNX).
Loading checks the manifest and every hash before anything is read, so a file that is not ours, or that
was changed, is refused with a message instead of being executed.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from glyphlab._version import __version__
from glyphlab.data.images import Preprocessing
from glyphlab.errors import FOREIGN_FILE_ERRORS, ConfigError, DataError, ModelFileError
from glyphlab.extras import model_libraries
from glyphlab.fileio import atomic_path, make_readable, sha256_file
from glyphlab.models.base import GlyphModel
from glyphlab.models.files import MANIFEST
from glyphlab.models.model_card import MODEL_CARD, basic_sections, render_model_card

FORMAT = "glyphlab-model"
FORMAT_VERSION = 1

#: what the weights readers raise on bytes that are not what the manifest says: the foreign-file errors, and the
#: generic ones the libraries use for them (XGBoostError is a ValueError, torch's readers raise RuntimeError);
#: load_model turns them into one ModelFileError that names the file
WEIGHTS_READ_ERRORS = (*FOREIGN_FILE_ERRORS, ValueError, KeyError, OSError, RuntimeError)


#: the core install's libraries a saved model depends on; the optional families' come from glyphlab/extras.py
CORE_LIBRARIES = ("numpy", "scikit-learn", "skops", "xgboost", "xgboost-cpu", "safetensors")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "glyphlab": __version__}
    for dist in (*CORE_LIBRARIES, *model_libraries()):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def save_model(model: GlyphModel, directory: str | Path) -> Path:
    """Write the model folder atomically: into a temp folder beside it, then rename."""
    model.check_fitted()
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        files = model._save_weights(tmp)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": model.name,
            "params": model.get_params(),
            "classes": model.classes_,
            "input_shape": list(model.input_shape_ or ()),
            "preprocessing": (model.preprocessing_ or Preprocessing.arrays(model.input_shape_ or (28, 28))).to_dict(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "files": {name: sha256_file(tmp / name) for name in files},
            "extra": model._manifest_extra(),
        }
        # a card from the model alone; a run rewrites it with the evaluation (write_model_card)
        card = json.loads(json.dumps(manifest, default=json_default))
        (tmp / MODEL_CARD).write_text(
            render_model_card(model.name, basic_sections(card, model.defaults)), encoding="utf-8"
        )
        manifest["files"][MODEL_CARD] = sha256_file(tmp / MODEL_CARD)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=json_default))
        make_readable(tmp)
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def write_model_card(path: str | Path, text: str) -> Path:
    """Replace a saved model's MODEL_CARD.md and its SHA-256 in the manifest (both written atomically).

    Only the card changes: the weights and their hashes are untouched, so the model loads as before.
    """
    directory = resolve_model_dir(path)
    manifest = read_manifest(directory)
    card = directory / MODEL_CARD
    # the card is moved into place first, then the manifest that hashes it (the inner block exits first)
    with atomic_path(directory / MANIFEST) as tmp_manifest, atomic_path(card) as tmp:
        tmp.write_text(text, encoding="utf-8")
        manifest.setdefault("files", {})[MODEL_CARD] = sha256_file(tmp)
        tmp_manifest.write_text(json.dumps(manifest, indent=2, default=json_default))
    return card


def read_model_card(path: str | Path) -> str | None:
    """The card of a model folder when its manifest lists it and the hash matches; None for an older folder."""
    directory = resolve_model_dir(path)
    manifest = read_manifest(directory)
    expected = (manifest.get("files") or {}).get(MODEL_CARD)
    card = directory / MODEL_CARD
    if not expected or not card.is_file():
        return None
    if sha256_file(card) != expected:
        raise ModelFileError(
            f"{card} does not match its manifest (changed after saving); rerun the evaluation or restore it"
        )
    return card.read_text(encoding="utf-8")


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for NumPy/torch scalars, tuples and sets (manifests, checkpoints)."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model folder, its manifest, or a run's per-model folder (``RUN/models/NAME``)."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"no such model: {p}. Pass a folder written by `glyphlab run` or model.save().")
    if p.is_file():
        if p.name == MANIFEST:
            return p.parent
        raise ModelFileError(
            f"{p} is a single file, not a glyphlab model folder. glyphlab never unpickles files; "
            "pass the folder that holds manifest.json."
        )
    for candidate in (p, p / "model"):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise ModelFileError(f"{p} holds no {MANIFEST}: it is not a glyphlab model folder")


def read_manifest(path: str | Path) -> dict[str, Any]:
    directory = resolve_model_dir(path)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{directory / MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{directory} is not a glyphlab model (manifest format is not '{FORMAT}')")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{directory} was written by a newer glyphlab (format {manifest['format_version']}); upgrade glyphlab"
        )
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelFileError(f"{directory}: the manifest lists no weights files")
    for name, expected in files.items():
        target = (directory / name).resolve()
        if target.parent != directory.resolve():
            raise ModelFileError(f"{directory}: the manifest names a file outside the model folder: {name!r}")
        if not target.is_file():
            raise ModelFileError(f"{directory}: weights file {name} is missing")
        actual = sha256_file(target)
        if actual != expected:
            raise ModelFileError(
                f"{directory / name} does not match its manifest "
                f"(SHA-256 {actual[:12]}... != {str(expected)[:12]}...): "
                "the file was changed or damaged after saving; retrain or restore it"
            )


def load_model(path: str | Path) -> GlyphModel:
    from glyphlab.models.registry import MODELS, missing_extra

    directory = resolve_model_dir(path)
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    name = manifest.get("model")
    extra = missing_extra(name) if isinstance(name, str) else None  # imports the model's family (and only it)
    if extra:
        raise ModelFileError(
            f"{directory} holds a '{name}' model, which needs glyphlab[{extra}]: pip install 'glyphlab[{extra}]'"
        )
    if name not in MODELS:
        raise ModelFileError(f"{directory} holds a '{name}' model, which this glyphlab does not know")
    required = MODELS[name].cls.weights_file
    if required and required not in manifest["files"]:
        raise ModelFileError(f"{directory}: the manifest does not list (and hash) {required}; refusing to load it")
    params = manifest.get("params", {})
    try:  # the same types and ranges as a new model's (a tta of 100000 would make every prediction hang)
        model = MODELS[name].cls(**(params if isinstance(params, dict) else {}))
        model.classes_ = list(manifest["classes"])
        model.input_shape_ = tuple(manifest["input_shape"]) or None  # type: ignore[assignment]
        model.preprocessing_ = manifest_preprocessing(manifest, directory)
    except ConfigError as exc:
        raise ModelFileError(f"{directory / MANIFEST}: {exc}; refusing to load it") from None
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{directory / MANIFEST} lacks or mangles {exc}: not a model glyphlab wrote") from None
    try:
        model._load_weights(directory, manifest)
    except ModelFileError:
        raise
    except WEIGHTS_READ_ERRORS as exc:
        what = required or ", ".join(manifest["files"])
        first = (str(exc).splitlines() or [""])[0][:200]
        raise ModelFileError(
            f"{directory / what} cannot be read as a '{name}' model ({type(exc).__name__}: {first}); it is not the "
            "file glyphlab saved there (glyphlab never unpickles files): retrain the model or restore the folder"
        ) from None
    return model


def manifest_preprocessing(manifest: dict[str, Any], directory: Path | str = "") -> Preprocessing:
    """The image preprocessing a manifest records (every model folder glyphlab saves records it)."""
    raw = manifest.get("preprocessing")
    if raw is None:
        raise ModelFileError(
            f"{directory}: the manifest records no image preprocessing, so new images could not be prepared as the "
            "model was trained: not a model folder this glyphlab saved; retrain it"
        )
    try:
        return Preprocessing.from_dict(raw)
    except DataError as exc:
        raise ModelFileError(f"{directory}: the manifest's preprocessing record is invalid: {exc}") from None
