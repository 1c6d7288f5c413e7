"""One table of optional extras (glyphlab/extras.py): pyproject's static TOML agrees with it, and the CLI's install
hint, the registry's optional families and a saved model's library versions all come from it."""

import tomllib
from importlib import metadata
from pathlib import Path

from glyphlab.cli import user_error_message
from glyphlab.extras import EXTRAS, extra_for_module, model_extras, model_libraries
from glyphlab.models.persistence import library_versions
from glyphlab.models.registry import OPTIONAL_MODELS, TORCH_MODELS, list_models, missing_extra

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_pyproject_extras_are_the_table():
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert declared == {name: list(extra.requires) for name, extra in EXTRAS.items()}


def test_the_install_hint_names_the_extra_of_every_optional_module():
    for name, extra in EXTRAS.items():
        for module in extra.imports:
            assert extra_for_module(module) == name
            message = user_error_message(ModuleNotFoundError(f"No module named '{module}'", name=f"{module}.sub"))
            assert message is not None and f"glyphlab[{name}]" in message
    assert extra_for_module("numpy") is None


def test_every_network_is_an_optional_model_of_the_table_and_nothing_else_is():
    from glyphlab.models.nets import TorchModel

    optional = model_extras()
    assert set(TORCH_MODELS) | set(OPTIONAL_MODELS) == set(optional)
    for spec in list_models():  # the families this install imports
        assert issubclass(spec.cls, TorchModel) == (spec.name in optional), spec.name
    for name, extra in optional.items():  # absent here: create_model names the extra (torch first when it is gone)
        assert missing_extra(name) in (None, extra, "torch")


def test_a_saved_model_records_the_version_of_every_optional_library_installed():
    versions = library_versions()
    assert {"timm", "torchvision", "torch", "e2cnn"} <= set(model_libraries())
    for dist in model_libraries():
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            assert dist not in versions
        else:
            assert versions[dist] == installed
