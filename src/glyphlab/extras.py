"""The optional extras, in one table: what each installs (pyproject's ``[project.optional-dependencies]``, which
must stay static TOML and is checked against this table by ``tests/test_extras.py``), which imports it brings
(so a missing module names the extra to install) and which model families need it.

Everything else derives from :data:`EXTRAS`: the CLI's "pip install 'glyphlab[X]'" hint, the model registry's
optional families and the library versions a saved model records.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Extra:
    #: pip requirements, exactly as in pyproject.toml (order included)
    requires: tuple[str, ...]
    #: top-level import name -> distribution, for the modules that mean "this extra is not installed"
    imports: dict[str, str] = field(default_factory=dict)
    #: the registered models that need it (their family's module does not import without it)
    models: tuple[str, ...] = ()


EXTRAS: dict[str, Extra] = {
    # training and serving networks (mlp, the CNNs, rot-cnn, efficientnet); a server of ONNX exports and
    # scikit-learn/XGBoost models needs only `serve`
    "torch": Extra(
        ("torch>=2.13,<2.15",),
        {"torch": "torch"},
        ("mlp", "cnn-small", "cnn-deep", "resnet-small", "cnn-fast"),
    ),
    "serve": Extra(
        (
            "fastapi>=0.110",
            "uvicorn>=0.29",
            "httptools>=0.6",
            "uvloop>=0.19; sys_platform != 'win32'",
            "python-multipart>=0.0.9",
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "onnxscript>=0.1",
            "skl2onnx>=1.17",
            "fastapi-offline>=1.7",
            "prometheus-client>=0.20",
        ),
        {
            "fastapi": "fastapi",
            "uvicorn": "uvicorn",
            "httptools": "httptools",
            "uvloop": "uvloop",
            "multipart": "python-multipart",
            "onnx": "onnx",
            "onnxruntime": "onnxruntime",
            "onnxscript": "onnxscript",
            "skl2onnx": "skl2onnx",
            "fastapi_offline": "fastapi-offline",
            "prometheus_client": "prometheus-client",
        },
    ),
    "rot": Extra(("e2cnn==0.2.3", "glyphlab[torch]"), {"e2cnn": "e2cnn"}, ("rot-cnn",)),
    "search": Extra(("optuna>=4", "psycopg2-binary>=2.9"), {"optuna": "optuna", "psycopg2": "psycopg2-binary"}),
    "test": Extra(
        (
            "ruff>=0.17",
            "statsmodels>=0.14",
            "psutil>=5.9",
            "pytest>=8",
            "pytest-timeout>=2",
            "hypothesis>=6",
            "httpx>=0.27",
            "selenium>=4.20",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6",
        )
    ),
    # attributions (Integrated Gradients, Grad-CAM, occlusion of networks); occlusion of any model needs none of it
    "explain": Extra(("captum>=0.7", "glyphlab[torch]"), {"captum": "captum"}),
    "mlflow": Extra(("mlflow>=3.0",), {"mlflow": "mlflow"}),
    "tensorboard": Extra(("tensorboard>=2.14",), {"tensorboard": "tensorboard"}),
    # label audit (confident learning on out-of-fold probabilities: glyphlab audit)
    "audit": Extra(("cleanlab>=2.6", "glyphlab[torch]"), {"cleanlab": "cleanlab"}),
    # batch inference on a Dask cluster (glyphlab predict --cluster tcp://scheduler:8786, or --cluster local)
    "cluster": Extra(("dask[distributed]>=2024.8",), {"dask": "dask", "distributed": "distributed"}),
    # Parquet output of batch jobs (glyphlab predict --out rows.parquet); JSON lines and CSV need nothing
    "parquet": Extra(("pyarrow>=14",), {"pyarrow": "pyarrow"}),
    "all": Extra(("glyphlab[torch,serve,rot,search,explain,mlflow,tensorboard,audit,cluster,parquet,test]",)),
    # EfficientNet through timm, which needs torchvision
    "timm": Extra(
        ("timm>=1.0", "glyphlab[torch]"), {"timm": "timm", "torchvision": "torchvision"}, ("efficientnet-b0",)
    ),
}


def extra_for_module(module: str) -> str | None:
    """The extra that installs top-level module ``module`` (``"optuna"`` -> ``"search"``), or None."""
    return next((name for name, extra in EXTRAS.items() if module in extra.imports), None)


def model_extras() -> dict[str, str]:
    """Every model of an optional family -> the extra that brings it."""
    return {model: name for name, extra in EXTRAS.items() for model in extra.models}


def model_libraries() -> tuple[str, ...]:
    """The distributions optional model families are built with (their versions belong in a saved model's record)."""
    return tuple(dict.fromkeys(dist for extra in EXTRAS.values() if extra.models for dist in extra.imports.values()))
