"""Optional model families: on an install without their extra they are named, with the extra to install."""

import hashlib
import json

import pytest

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.persistence import FORMAT, MANIFEST, load_model


def test_an_optional_model_without_its_extra_names_the_extra(core_install):
    assert core_install.missing_models() == {"efficientnet-b0": "timm", "rot-cnn": "rot"}
    assert "rot-cnn" not in {m.name for m in core_install.list_models()}
    with pytest.raises(ConfigError) as exc:
        core_install.create_model("efficientnet-b0")
    assert "needs glyphlab[timm]" in str(exc.value) and "pip install 'glyphlab[timm]'" in str(exc.value)
    assert "unknown model" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"unknown model 'no-such-net'"):
        core_install.create_model("no-such-net")


def test_with_the_extras_nothing_is_missing():
    pytest.importorskip("e2cnn")
    from glyphlab.models import registry

    assert "rot-cnn" not in registry.missing_models() and registry.create_model("rot-cnn").name == "rot-cnn"


def test_a_saved_model_of_a_missing_family_says_which_extra_loads_it(tmp_path, core_install):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(b"x")
    (folder / MANIFEST).write_text(
        json.dumps(
            {
                "format": FORMAT,
                "format_version": 1,
                "model": "rot-cnn",
                "params": {},
                "classes": ["0", "1"],
                "input_shape": [28, 28],
                "files": {"weights.safetensors": hashlib.sha256(b"x").hexdigest()},
            }
        )
    )
    with pytest.raises(ModelFileError, match=r"'rot-cnn' model, which needs glyphlab\[rot\]"):
        load_model(folder)


def test_the_table_names_the_module_of_every_model():
    from glyphlab.models import registry

    registry.load_builtin_models()
    assert set(registry.MODELS) | set(registry.missing_models()) == set(registry.MODEL_MODULES)
    for spec in registry.MODELS.values():
        assert registry.MODEL_MODULES[spec.name] == spec.cls.__module__, spec.name


def test_a_family_is_imported_only_when_one_of_its_models_is_used():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from glyphlab.models.registry import create_model, model_spec\n"
        "before = sorted(m for m in sys.modules if m.startswith('glyphlab.models.') and m != 'glyphlab.models.base')\n"
        "create_model('logreg'); assert model_spec('svm').family == 'classical'\n"
        "print(before, 'glyphlab.models.nets' in sys.modules, 'glyphlab.models.classical' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded, nets, classical = out.stdout.rsplit(" ", 2)
    assert (nets.strip(), classical.strip()) == ("False", "True")
    assert "classical" not in loaded and "nets" not in loaded  # the registry itself imports no family
