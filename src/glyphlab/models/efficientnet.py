"""EfficientNet-b0 from timm (seed 001's best model): an optional family, installed with the ``timm`` extra.

``pip install 'glyphlab[timm]'``. Importing this module without timm raises ``ModuleNotFoundError`` for
``timm``, which the model registry takes as "optional family not installed" and skips.

The network is timm's ``efficientnet_b0`` with one input channel and its classifier removed (the pooled
1280-d features are glyphlab's penultimate representation) and a new linear head, as in seed 001. With
``pretrained=True`` the ImageNet weights come from ``pretrained_path`` (a local ``.safetensors``/``.pth``
file) or, when that is not set, from timm's download (Hugging Face Hub); timm sums the RGB stem into the
single grey channel (a grey image gives what the RGB stem gives on R=G=B). Offline, without
``pretrained_path``, fitting stops with a :class:`ConfigError` that says so.

timm imports torchvision, which must be a build made for the installed torch: a mismatched pair fails at
``import timm`` with e.g. ``RuntimeError: operator torchvision::nms does not exist``. That must not take
the other families down with it (the registry imports this module for every command), so the model stays
registered and building it raises a :class:`ConfigError` naming the pair to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

#: why an installed timm does not import (None when it does)
_TIMM_IMPORT_ERROR: str | None = None
try:
    import timm  # noqa: F401  (the optional dependency: ModuleNotFoundError 'timm' when absent)
except Exception as _exc:
    if isinstance(_exc, ModuleNotFoundError) and _exc.name == "timm":
        raise  # not installed: the registry skips this optional family
    # installed but broken, typically a torchvision built for another torch
    _TIMM_IMPORT_ERROR = f"{type(_exc).__name__}: {(str(_exc).splitlines() or [''])[0]}"

from glyphlab.errors import ConfigError
from glyphlab.models.nets import GlyphNet, TorchModel, flat_dim
from glyphlab.models.params import TORCH_SPECS, spec
from glyphlab.models.registry import register_model

TIMM_NAME = "efficientnet_b0"


def _broken_timm_message() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return (
        f"efficientnet-b0: timm {installed('timm')} is installed but does not import ({_TIMM_IMPORT_ERROR}). timm "
        f"imports torchvision, which must be built for this torch (here torch {torch.__version__}, torchvision "
        f"{installed('torchvision')}): install a pair built together, e.g. pip install torch==2.14.1 "
        "torchvision==0.29.1, or uninstall timm"
    )


@register_model("efficientnet-b0", "EfficientNet-b0 (timm), 1 input channel, new head; seed 001 (needs timm)", "torch")
class EfficientNetB0(TorchModel):
    architecture: ClassVar[dict[str, Any]] = {
        "pretrained": False,  # ImageNet weights (timm's download, or pretrained_path)
        "pretrained_path": None,  # a local weights file for pretrained=True (offline machines)
        "drop_rate": 0.2,  # dropout before the head
    }
    training: ClassVar[dict[str, Any]] = {"epochs": 25, "batch_size": 64, "weight_decay": 1e-4}
    param_specs = {
        **TORCH_SPECS,
        "pretrained_path": spec("none", "str"),
        "drop_rate": spec("number", low=0, high=1, high_open=True),
    }
    #: five stride-2 stages: smaller inputs are resized up so the last feature map is at least 1x1
    min_side: ClassVar[int] = 32

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._from_saved = False

    def _create_trunk(self) -> nn.Module:
        if _TIMM_IMPORT_ERROR is not None:
            raise ConfigError(_broken_timm_message())
        import timm

        p = self.params
        pretrained = bool(p["pretrained"]) and not self._from_saved
        kwargs: dict[str, Any] = {"in_chans": 1, "num_classes": 0, "drop_rate": float(p["drop_rate"])}
        if pretrained and p["pretrained_path"]:
            path = Path(p["pretrained_path"]).expanduser()
            if not path.is_file():
                raise ConfigError(f"efficientnet-b0: pretrained_path={str(path)!r} is not a file")
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            return timm.create_model(TIMM_NAME, pretrained=pretrained, **kwargs)
        except ConfigError:
            raise
        except Exception as exc:  # hub/network errors come in many types (OSError, HTTP, LocalEntryNotFound)
            if pretrained and not p["pretrained_path"]:
                raise ConfigError(
                    f"efficientnet-b0: could not fetch the pretrained {TIMM_NAME} weights ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else exc!r}). Offline, download the weights file elsewhere "
                    "and set pretrained_path to it (e.g. --param pretrained_path=weights/efficientnet_b0.safetensors), "
                    "or use pretrained=false."
                ) from None
            if pretrained:
                raise ConfigError(
                    f"efficientnet-b0: cannot load pretrained_path={p['pretrained_path']!r}: {exc}"
                ) from None
            raise

    def build_module(self, input_shape: tuple[int, int], n_classes: int) -> GlyphNet:
        trunk = self._create_trunk()
        dim = int(getattr(trunk, "num_features", 0)) or flat_dim(trunk, input_shape, self.min_side)
        return GlyphNet(trunk, nn.Linear(dim, n_classes), self.min_side)

    def _load_weights(self, directory: Path, manifest: dict[str, Any]) -> None:
        # a saved model carries all its weights: never download ImageNet ones to rebuild it
        self._from_saved = True
        try:
            super()._load_weights(directory, manifest)
        finally:
            self._from_saved = False
