"""Torch networks: a shared :class:`TorchModel` base and the registered nets (mlp, cnn-small, cnn-deep,
resnet-small). All of them train through :func:`glyphlab.models.torch.trainer.train`.

Every net is a :class:`GlyphNet`: input normalisation (buffers ``norm.mean``/``norm.std``), an optional
resize of tiny inputs up to the architecture's minimum side, a ``features`` trunk whose output is the
penultimate representation, and a linear ``head``. Weights are stored in ``weights.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from glyphlab.errors import ConfigError, ModelFileError
from glyphlab.models.base import EpochCallback, GlyphModel, check_images
from glyphlab.models.calibration import CALIBRATION_FILE, check_method, fit_temperature
from glyphlab.models.params import TORCH_SPECS
from glyphlab.models.persistence import load_model
from glyphlab.models.registry import register_model
from glyphlab.models.torch.augment import AugmentConfig, tta_proba
from glyphlab.models.torch.loop import resolve_device
from glyphlab.models.torch.params import train_config, training_defaults
from glyphlab.models.torch.trainer import train

WEIGHTS = "weights.safetensors"


class Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("std", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class GlyphNet(nn.Module):
    """norm -> (resize tiny inputs) -> features -> head."""

    def __init__(self, features: nn.Module, head: nn.Module, min_side: int = 0) -> None:
        super().__init__()
        self.norm = Normalize()
        self.features = features
        self.head = head
        self.min_side = int(min_side)
        self.frozen = False
        #: conv nets run in channels-last layout (oneDNN's fast path on CPU, tensor cores on GPU)
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in features.modules())
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        h, w = x.shape[-2:]
        if self.min_side and min(h, w) < self.min_side:
            f = self.min_side / min(h, w)
            x = F.interpolate(x, size=(round(h * f), round(w * f)), mode="bilinear", align_corners=False)
        x = self.norm(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def train(self, mode: bool = True) -> GlyphNet:
        super().train(mode)
        if self.frozen:  # frozen features keep BN statistics and skip dropout
            self.features.eval()
        return self


def flat_dim(features: nn.Module, shape: tuple[int, int], min_side: int) -> int:
    h, w = shape
    if min_side and min(h, w) < min_side:
        f = min_side / min(h, w)
        h, w = round(h * f), round(w * f)
    was = features.training
    features.eval()
    with torch.no_grad():
        dim = int(features(torch.zeros(1, 1, h, w)).shape[1])
    features.train(was)
    return dim


class TorchModel(GlyphModel):
    """Shared plumbing of glyphlab's torch networks; a subclass implements :meth:`build_features` (or
    :meth:`build_module`) and declares its parameters in two dicts, merged along the class hierarchy:

    * ``architecture``: the network's own parameters and their defaults (``hidden``, ``dropout``, ...);
    * ``training``: where the net wants other training defaults than TrainConfig/AugmentConfig's, the
      overrides (``{"epochs": 12, "lr": 2e-3}``). Only these two places name a default; ``defaults`` (what
      ``glyphlab models`` lists and what the model accepts) is derived from them and the engine's configs.

    A variant is a subclass that overrides a few entries: ``class CNNFast(CNNSmall): training = {"epochs": 1}``.
    """

    uses_validation: ClassVar[bool] = True
    data_parallel: ClassVar[bool] = True
    weights_file = WEIGHTS
    onnx_kind = "torch"
    #: nets stop early after 5 epochs without improvement by default (the bare loop never does)
    training: ClassVar[dict[str, Any]] = {"patience": 5}
    architecture: ClassVar[dict[str, Any]] = {}
    defaults: ClassVar[dict[str, Any]] = training_defaults(training)
    param_specs = TORCH_SPECS
    #: inputs with a smaller side are resized (bilinear) up to this side before the network
    min_side: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "defaults" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__}: a network declares `architecture` and `training`, not `defaults` "
                "(derived from them and TrainConfig/AugmentConfig)"
            )
        training: dict[str, Any] = {}
        architecture: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):  # base classes first, so a subclass's entries win
            training.update(klass.__dict__.get("training", {}))
            architecture.update(klass.__dict__.get("architecture", {}))
        clash = set(architecture) & set(training_defaults())
        if clash:
            raise TypeError(
                f"{cls.__name__}: architecture parameters {sorted(clash)} are training parameters; "
                "put their defaults in `training`"
            )
        cls.defaults = {**training_defaults(training), **architecture}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.module_: GlyphNet | None = None
        self.mean_: float = 0.0
        self.std_: float = 1.0
        self.device_: torch.device | None = None
        self.temperature_: float = 1.0
        self.precision_: str = "fp32"  #: the precision trained in (precision=auto resolved), recorded in the manifest
        self.calibration_: dict[str, Any] = {}

    # -- architecture ------------------------------------------------------------------------------
    def build_features(self) -> nn.Module:
        """The trunk (input (N, 1, H, W) normalised) ending in a flat penultimate vector; or override build_module."""
        raise NotImplementedError

    def build_head(self, in_features: int, n_classes: int) -> nn.Module:
        return nn.Linear(in_features, n_classes)

    def build_module(self, input_shape: tuple[int, int], n_classes: int) -> GlyphNet:
        features = self.build_features()
        dim = flat_dim(features, input_shape, self.min_side)
        return GlyphNet(features, self.build_head(dim, n_classes), self.min_side)

    # -- training ----------------------------------------------------------------------------------
    def _fingerprint(self, images: np.ndarray, labels: np.ndarray, val_images, val_labels) -> str:
        h = hashlib.sha256()
        skip = {"progress", "device"}
        h.update(json.dumps({k: v for k, v in sorted(self.params.items()) if k not in skip}, default=str).encode())
        h.update(json.dumps([self.name, list(self.input_shape_ or ()), self.classes_]).encode())
        for arr in (images, labels, val_images, val_labels):
            if arr is None:
                h.update(b"none")
                continue
            a = np.ascontiguousarray(arr)
            h.update(str(a.shape).encode())
            h.update(a.reshape(-1)[:: max(1, a.size // 200_000)].tobytes())
        return h.hexdigest()

    def _fit(
        self, images, labels, val_images, val_labels, *, run_dir: Path | None, callbacks: Sequence[EpochCallback] = ()
    ) -> None:
        p = self.params
        calibrate = check_method(p["calibrate"])
        if calibrate == "temperature" and (p["fit_on_val"] or val_images is None or not len(val_images)):
            raise ConfigError(
                "calibrate=temperature fits the temperature on the validation split: it needs one "
                "(and fit_on_val=False, which would train on it)"
            )
        self.temperature_, self.calibration_ = 1.0, {}
        if p["fit_on_val"] and val_images is not None and len(val_images):
            images = np.concatenate([images, val_images])
            labels = np.concatenate([labels, val_labels])
            val_images = val_labels = None
        torch.manual_seed(int(p["seed"]))
        n_classes = len(self.classes_ or [])
        module = self.build_module(self.input_shape_, n_classes)  # type: ignore[arg-type]
        self.mean_ = float(images.mean())
        self.std_ = float(images.std()) or 1.0
        module.norm.mean.fill_(self.mean_)
        module.norm.std.fill_(self.std_)
        if p["init_from"]:
            self._init_from(module, p["init_from"])
        params = None
        if p["freeze_features"]:
            if not p["init_from"]:
                raise ConfigError("freeze_features=True needs init_from (a saved model to take the features from)")
            for name, prm in module.named_parameters():
                prm.requires_grad_(name.startswith("head."))
            module.frozen = True
            params = list(module.head.parameters())
        patience = None if p["fit_on_val"] else (int(p["patience"] or 0) or None)
        cfg = train_config(p, patience=patience)
        result = train(
            module,
            images,
            labels,
            val_images,
            val_labels,
            n_classes=n_classes,
            config=cfg,
            run_dir=run_dir,
            fingerprint=self._fingerprint(images, labels, val_images, val_labels),
            parameters=params,
            callbacks=callbacks,
        )
        self.module_ = module
        self.device_ = next(module.parameters()).device
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.resumed_from_ = result.resumed_from  # epochs trained by an earlier, interrupted process
        self.precision_ = result.precision  # what precision=auto became on this machine
        if calibrate == "temperature":
            self.calibrate_temperature(val_images, val_labels)

    def calibrate_temperature(self, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Fit the temperature on held-out (images, labels) and use it from now on (the argmax is unchanged)."""
        module = self.torch_module()
        logits = self._batches(images, lambda xb: module(xb).float())
        fit = fit_temperature(logits, labels)
        self.temperature_ = fit["temperature"]
        self.calibration_ = {"method": "temperature", "fitted_on": "validation split", **fit}
        return self.calibration_

    def _init_from(self, module: GlyphNet, source: str | Path) -> list[str]:
        """Copy every tensor whose name and shape match from a saved torch model (normalisation included)."""
        src = load_model(source)
        if not isinstance(src, TorchModel) or src.module_ is None:
            raise ConfigError(f"init_from={source!r} is not a saved glyphlab torch network")
        theirs = src.module_.state_dict()
        mine = module.state_dict()
        copied = [k for k, v in theirs.items() if k in mine and mine[k].shape == v.shape]
        if not any(not k.startswith("norm.") for k in copied):
            raise ConfigError(f"init_from={source!r}: no weights match this architecture (was it a '{self.name}'?)")
        module.load_state_dict({k: theirs[k].to(mine[k].device) for k in copied}, strict=False)
        self.mean_ = float(module.norm.mean)
        self.std_ = float(module.norm.std)
        self.init_copied_ = copied
        return copied

    # -- inference ---------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        if self.device_ is None:
            self.device_ = resolve_device(self.params["device"])
            if self.module_ is not None:
                self.module_.to(self.device_)
        return self.device_

    def _batches(self, images: np.ndarray, fn, batch_size: int = 1024) -> np.ndarray:
        self.check_fitted()
        if self.module_ is None:
            raise ConfigError(f"model '{self.name}' has no network: fit it or load a saved one")
        x = check_images(images)
        if tuple(x.shape[1:]) != tuple(self.input_shape_ or x.shape[1:]):
            raise ConfigError(f"model '{self.name}' was trained on {self.input_shape_} images, got {x.shape[1:]}")
        dev = self._device()
        self.module_.eval()
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[i : i + batch_size]).unsqueeze(1).to(dev)
                outs.append(fn(xb).float().cpu().numpy())
        if not outs:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(outs)

    def torch_module(self) -> nn.Module | None:
        """The module that predicts; a family with a faster inference form (rot-cnn's export) overrides this."""
        return self.module_

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        out = self._batches(images, self._batch_proba(self.torch_module()))
        if out.size == 0:
            return np.zeros((0, len(self.classes_ or [])), dtype=np.float32)
        return out

    def _batch_proba(self, module: nn.Module):
        """The function from a (N, 1, H, W) batch to class probabilities: the network's softmax, averaged over
        ``tta`` augmented copies when asked. A model that averages over more (rot-cnn's rotations) wraps it."""
        k = int(self.params["tta"] or 0)

        temperature = float(self.temperature_)

        def proba(xb: torch.Tensor) -> torch.Tensor:
            return torch.softmax(module(xb).float() / temperature, dim=1)

        if k <= 0:
            return proba
        cfg = AugmentConfig.from_params(self.params)
        return lambda xb: tta_proba(proba, xb, k, cfg, seed=int(self.params["seed"]))

    def features(self, images: np.ndarray) -> np.ndarray:
        module = self.torch_module()
        return self._batches(images, lambda xb: module.embed(xb).flatten(1))

    # -- persistence -------------------------------------------------------------------------------
    def _save_weights(self, directory: Path) -> list[str]:
        state = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        save_file(state, str(Path(directory) / WEIGHTS), metadata={"model": self.name})
        if not self.calibration_:
            return [WEIGHTS]
        (Path(directory) / CALIBRATION_FILE).write_text(json.dumps(self.calibration_, indent=2))
        return [WEIGHTS, CALIBRATION_FILE]

    def _load_weights(self, directory: Path, manifest: dict[str, Any]) -> None:
        try:
            state = load_file(str(Path(directory) / WEIGHTS))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFileError(f"{directory / WEIGHTS} is not a readable safetensors file: {exc}") from None
        module = self.build_module(tuple(self.input_shape_), len(self.classes_))  # type: ignore[arg-type]
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(
                f"{directory / WEIGHTS} does not fit a '{self.name}' network with these "
                f"parameters: {str(exc).splitlines()[0]}"
            ) from None
        extra = manifest.get("extra") or {}
        self.mean_ = float(extra.get("mean", float(module.norm.mean)))
        self.std_ = float(extra.get("std", float(module.norm.std)))
        self.history_ = list(extra.get("history", []))
        self.precision_ = str(extra.get("precision", "fp32"))
        module.eval()
        self.module_ = module
        self.device_ = None
        self._device()
        self.temperature_, self.calibration_ = 1.0, {}
        if CALIBRATION_FILE in (manifest.get("files") or {}):  # its SHA-256 was checked by load_model
            try:
                self.calibration_ = json.loads((Path(directory) / CALIBRATION_FILE).read_text())
                self.temperature_ = float(self.calibration_["temperature"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelFileError(
                    f"{directory / CALIBRATION_FILE} is not a glyphlab calibration file: {exc}"
                ) from None
            if not (np.isfinite(self.temperature_) and self.temperature_ > 0):
                raise ModelFileError(f"{directory / CALIBRATION_FILE}: temperature {self.temperature_} is not positive")
        elif self.params.get("calibrate") == "temperature":
            raise ModelFileError(
                f"{directory}: the model was trained with calibrate=temperature but the manifest "
                f"lists no {CALIBRATION_FILE}; refusing to serve uncalibrated probabilities"
            )

    def _manifest_extra(self) -> dict[str, Any]:
        return {
            "mean": self.mean_,
            "std": self.std_,
            "history": self.history_,
            "temperature": self.temperature_,
            "precision": self.precision_,  # the one trained in; the saved weights are fp32
            "n_parameters": sum(p.numel() for p in self.module_.parameters()) if self.module_ else 0,
        }


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int | None = None) -> nn.Sequential:
    pad = k // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register_model("mlp", "Dense network (hidden layers, dropout, weight decay, early stopping)", "torch")
class MLP(TorchModel):
    architecture = {"hidden": [512, 256], "dropout": 0.2}
    training = {"epochs": 20, "weight_decay": 1e-4}

    def build_module(self, input_shape: tuple[int, int], n_classes: int) -> GlyphNet:
        hidden = [int(h) for h in self.params["hidden"]]
        d = float(self.params["dropout"])
        layers: list[nn.Module] = [nn.Flatten()]
        prev = input_shape[0] * input_shape[1]
        for hsize in hidden:
            layers += [nn.Linear(prev, hsize), nn.ReLU(inplace=True), nn.Dropout(d)]
            prev = hsize
        return GlyphNet(nn.Sequential(*layers), nn.Linear(prev, n_classes))


@register_model("cnn-small", "Seed 004's CNN: conv5x5(32) relu, maxpool, dropout 0.5, dense 128, dense", "torch")
class CNNSmall(TorchModel):
    architecture = {"dropout": 0.5}
    training = {"epochs": 12, "lr": 2e-3, "optimizer": "adam"}
    min_side = 16

    def build_module(self, input_shape: tuple[int, int], n_classes: int) -> GlyphNet:
        d = float(self.params["dropout"])
        conv = nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(d), nn.Flatten())
        dim = flat_dim(conv, input_shape, self.min_side)
        features = nn.Sequential(*conv, nn.Linear(dim, 128), nn.ReLU(inplace=True))
        return GlyphNet(features, nn.Linear(128, n_classes), self.min_side)


@register_model("cnn-deep", "Seed 002's deep CNN: 3x3 convs + BN, strided 5x5 convs, dropout 0.35 (rmsprop)", "torch")
class CNNDeep(TorchModel):
    architecture = {"dropout": 0.35}
    training = {"epochs": 15, "batch_size": 64, "optimizer": "rmsprop"}
    min_side = 28  # valid 3x3 convs shrink the map: smaller glyphs are resized up to 28

    def build_features(self) -> nn.Module:
        d = float(self.params["dropout"])

        def block(cin: int, c: int) -> list[nn.Module]:
            return [
                conv_bn(cin, c, 3, padding=0),
                conv_bn(c, c, 3, padding=0),
                conv_bn(c, c, 5, stride=2, padding=2),
                nn.Dropout(d),
            ]

        return nn.Sequential(*block(1, 32), *block(32, 64), conv_bn(64, 128, 4, padding=0), nn.Flatten(), nn.Dropout(d))


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + x, inplace=True)


@register_model(
    "resnet-small", "Small ResNet (32-64-128 channels, strided convs, BN, global average pooling), fast on CPU", "torch"
)
class ResNetSmall(TorchModel):
    """Built for accuracy per CPU second on 28x28 glyphs: every stage starts with a stride-2 3x3 conv + BN + ReLU
    (28 -> 14 -> 7 -> 4), ``blocks[i]`` residual blocks follow stage i, then global average pooling and a linear
    head. The default (one residual block at 7x7) costs ~3.5 M multiply-adds per 28x28 image."""

    architecture = {"width": [32, 64, 128], "blocks": [0, 1, 0]}
    training = {"epochs": 2, "lr": 4e-3, "weight_decay": 5e-4, "patience": 0}
    min_side = 16

    def build_features(self) -> nn.Module:
        w = [int(c) for c in self.params["width"]]
        blocks = [int(b) for b in self.params["blocks"]]
        if len(w) != 3 or len(blocks) != 3:
            raise ConfigError("resnet-small: width and blocks take three values (one per stage)")
        layers: list[nn.Module] = []
        cin = 1
        for c, nb in zip(w, blocks):
            layers.append(conv_bn(cin, c, 3, stride=2))
            layers += [BasicBlock(c) for _ in range(nb)]
            cin = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return nn.Sequential(*layers)
