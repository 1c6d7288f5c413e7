"""glyphlab: from a folder of handwritten-character images to a trained, evaluated and served classifier.

``import glyphlab as gl`` gives the public API (see docs/api.md)::

    gl.list_datasets(); gl.list_models("cnn*")
    ds = gl.load_dataset("digits", limit=300)
    run = gl.run("digits", models=["logreg", "svm"], out="runs/x", progress=False)
    run.leaderboard; run.interpret("svm").confusion_matrix(); run.report()

The names are loaded on first use (PEP 562), so ``import glyphlab`` stays instant for the CLI and the
server, which import only the modules they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glyphlab._version import __version__

#: every public name and the module that defines it
_PUBLIC = {
    "list_datasets": "glyphlab.api",
    "list_models": "glyphlab.api",
    "load_dataset": "glyphlab.api",
    "create_model": "glyphlab.api",
    "load_model": "glyphlab.api",
    "run": "glyphlab.api",
    "Run": "glyphlab.api",
    "search": "glyphlab.api",
    "recipe": "glyphlab.api",
    "robustness": "glyphlab.api",
    "Predictor": "glyphlab.api",
    "Interpretation": "glyphlab.api",
    "compare": "glyphlab.api",
    "runs": "glyphlab.api",
    "Comparison": "glyphlab.api",
    "read": "glyphlab.api",
    "predict": "glyphlab.api",
    "Dataset": "glyphlab.data.dataset",
    "GlyphModel": "glyphlab.models.base",
    "GlyphlabError": "glyphlab.errors",
    "DataError": "glyphlab.errors",
    "ConfigError": "glyphlab.errors",
    "ModelFileError": "glyphlab.errors",
    "RunFolderError": "glyphlab.errors",
    "evaluate": "glyphlab.api",
    "explain": "glyphlab.api",
    "export": "glyphlab.api",
    "Explanation": "glyphlab.evaluation.attributions",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from glyphlab.api import (  # noqa: F401
        Comparison,
        Interpretation,
        Predictor,
        Run,
        compare,
        create_model,  # noqa: F401
        explain,
        export,
        list_datasets,
        list_models,
        load_dataset,
        load_model,
        predict,
        read,
        recipe,
        run,
        runs,
        search,
    )
    from glyphlab.data.dataset import Dataset  # noqa: F401
    from glyphlab.errors import ConfigError, DataError, GlyphlabError, ModelFileError, RunFolderError  # noqa: F401
    from glyphlab.evaluation.attributions import Explanation  # noqa: F401
    from glyphlab.models.base import GlyphModel  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'glyphlab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # next time a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
