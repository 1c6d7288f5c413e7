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
