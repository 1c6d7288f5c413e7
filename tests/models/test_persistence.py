"""Saved model folders: readable by other users as the umask allows, and foreign files refused by name."""

import hashlib
import json
import os
import pickle
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from glyphlab.errors import ModelFileError
from glyphlab.models.persistence import MANIFEST, load_model, read_manifest, verify_files
from glyphlab.models.registry import create_model

OTHER_UID = 10001  # the Dockerfile's non-root user


@pytest.fixture(scope="module")
def logreg(digits):
    train = digits["train"]
    return create_model("logreg", max_iter=50).fit(train.images[:300], train.labels[:300])


def _modes(folder: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(folder.stat().st_mode)}
    for p in folder.rglob("*"):
        out[str(p.relative_to(folder))] = stat.S_IMODE(p.stat().st_mode)
    return out


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_a_saved_model_has_the_modes_the_umask_allows(tmp_path, logreg, umask, folder_mode, file_mode):
    old = os.umask(umask)
    try:
        folder = logreg.save(tmp_path / "m")
    finally:
        os.umask(old)
    modes = _modes(folder)
    assert modes.pop(".") == folder_mode  # tempfile.mkdtemp alone would leave 0700
    assert modes and set(modes.values()) == {file_mode}, modes


def test_an_exported_onnx_file_is_readable_too(tmp_path, logreg):
    pytest.importorskip("skl2onnx")
    from glyphlab.serving.onnx_export import export_onnx

    old = os.umask(0o022)
    try:
        out = export_onnx(logreg.save(tmp_path / "m"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # mkstemp alone would leave 0600


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="switching to another uid needs root")
def test_another_user_can_read_a_saved_model(logreg):
    base = Path(tempfile.mkdtemp(prefix="glyphlab-perm-"))  # pytest's own tmp folders are 0700: not traversable
    try:
        os.chmod(base, 0o755)
        old = os.umask(0o022)
        try:
            folder = logreg.save(base / "model")
        finally:
            os.umask(old)
        pid = os.fork()
        if pid == 0:  # the child becomes uid 10001 and reads the folder as `load_model` does before loading
            code = 1
            try:
                os.setgroups([])
                os.setgid(OTHER_UID)
                os.setuid(OTHER_UID)
                manifest = read_manifest(folder)
                verify_files(folder, manifest)  # every file opened and hashed
                code = 0 if set(os.listdir(folder)) == {MANIFEST, *manifest["files"]} else 3
            except BaseException as exc:  # noqa: BLE001 - report anything, exit without pytest's teardown
                os.write(2, f"uid {OTHER_UID} cannot read the model: {exc!r}\n".encode())
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _plant(folder: Path, name: str, payload: bytes) -> None:
    """Replace a weights file and fix up its hash, as someone handing over a doctored model folder would."""
    (folder / name).write_bytes(payload)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][name] = hashlib.sha256(payload).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/glyphlab-pwned",))


@pytest.mark.parametrize(
    "name, weights, error",
    [
        ("logreg", "model.skops", "BadZipFile"),
        ("xgboost", "model.xgb.json", "UnicodeDecodeError"),
        ("mlp", "weights.safetensors", "not a readable safetensors file"),
    ],
)
def test_a_pickle_planted_as_weights_is_refused_by_name(tmp_path, digits, name, weights, error):
    train = digits["train"]
    params = {
        "logreg": {"max_iter": 50},
        "xgboost": {"n_estimators": 3},
        "mlp": {"hidden": [8], "epochs": 1, "progress": False},
    }[name]
    folder = create_model(name, **params).fit(train.images[:300], train.labels[:300]).save(tmp_path / "m")
    _plant(folder, weights, pickle.dumps(_Boom()))
    with pytest.raises(ModelFileError) as exc:
        load_model(folder)
    message = str(exc.value)
    assert str(folder / weights) in message and error in message and "\n" not in message
    assert not Path("/tmp/glyphlab-pwned").exists()
