"""``rot-cnn``: a rotation-equivariant (E(2)-steerable) CNN built with e2cnn (optional dependency).

Architecture (Weiler & Cesa 2019, the e2cnn MNIST example, made small enough for a CPU)::

    resize to S x S -> lift: R2Conv(trivial -> w1 regular fields, 7x7, padding 1) + InnerBatchNorm + ReLU
    -> antialiased average pool (Gaussian sigma 0.66, stride 2)
    -> R2Conv(w1 -> w2, 5x5) + BN + ReLU -> antialiased pool (stride 2)
    -> R2Conv(w2 -> w3, 5x5) + BN + ReLU -> R2Conv(w3 -> w3, 5x5, padding 1) + BN + ReLU
    -> group pooling (max over each regular field: rotation invariant) -> global average over space
    -> Linear(w3, hidden) + BatchNorm1d + ELU + Dropout -> Linear(hidden, n_classes)

``kernels`` sets the four convolutions' sizes (default 7, 5, 5, 5 as above). ``kernels=[7, 5, 3, 3]`` with
``widths=[8, 12, 32]`` is the cheaper option measured for issue 19: 53.5 instead of 117.7 million multiply-adds
an image, 1.73-1.80x the training images/s of the mnist-rot recipe's network on the 2-core Zen 3, but 0.9879
on mnist-rot's test set after 16 epochs (838 s) against that recipe's 0.98912-0.99002 after 20 (about 1,800 s):
an option, not the default; ``widths=[6, 12, 32]`` measured 2.08x and 0.9878 after the recipe's 20 epochs
(863 s) (``bench/rot_speed.py``, ``docs/benchmarks.md``).

The symmetry group is C_N (``gspaces.Rot2dOnR2(N)``) or D_N with ``flip=True`` (``FlipRot2dOnR2``).
Features are regular representations, so every field holds N (2N) channels and the network is equivariant
to rotations by multiples of 360/N degrees; group pooling then makes the representation invariant.

**Input size.** The network works on an S x S image, S = the smallest side >= max(H, W, 21) with
S = 1 (mod 4): 29 for MNIST's 28 x 28 (the size e2cnn's own MNIST example pads to). An image of another
size is resized bilinearly (``align_corners=False``, the same symmetric operation on both axes, so it
commutes with 90-degree rotations and flips; padding 28 -> 29 on one side would not). With S = 1 (mod 4)
the input of both stride-2 poolings has an odd side, so every pooling samples a grid that is symmetric about
the image centre: rotating the input by a multiple of 90 degrees (``torch.rot90``) then leaves the logits
unchanged up to float rounding whenever C4 is a subgroup of the network's group (N divisible by 4).
Other angles are handled approximately: exactly by the group for multiples of 360/N on the continuum,
up to interpolation on the pixel grid.

**Inference.** After training (and after loading) the equivariant network is exported to plain torch modules
(``R2Conv.export()`` -> ``Conv2d``, ``InnerBatchNorm.export()`` -> ``BatchNorm2d``, ``ReLU.export()``; the
antialiased pooling and group pooling, which e2cnn cannot export, become the small :class:`GaussianPool` and
:class:`GroupMaxPool` below). ``predict_proba`` and ``features`` run the exported copy, which gives the same
outputs as the equivariant network (to ~1e-6) several times faster. ``model.module_`` is the equivariant
:class:`~glyphlab.models.nets.GlyphNet`, ``model.exported_`` the plain one.

**Saving.** The equivariant network's learned tensors (steerable-basis coefficients, biases, batch-norm
statistics, input normalisation) go to ``weights.safetensors`` through the TorchModel machinery. Everything
e2cnn derives from the architecture (sampled bases, index buffers, expanded filters, Gaussian pooling
filters) is kept out of the state dict, so the file is small, loads strictly in either train or eval mode,
and checkpoints resume exactly; loading rebuilds the network from the parameters and exports it again.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from e2cnn import gspaces  # noqa: F401  (a missing e2cnn makes the registry skip this optional family)
from e2cnn import nn as enn

from glyphlab.errors import ConfigError
from glyphlab.models.base import EpochCallback
from glyphlab.models.nets import GlyphNet, TorchModel
from glyphlab.models.params import MAX_TTA, TORCH_SPECS, spec
from glyphlab.models.registry import register_model
from glyphlab.models.torch.augment import rotate

MIN_WORK_SIDE = 21


def work_side(shape: tuple[int, int], size: int | None = None) -> int:
    """The side the network works at: ``size`` if given (it must be 1 mod 4), else the smallest side >= the
    input's (and >= 21) that is 1 mod 4 (29 for 28 x 28)."""
    if size:
        s = int(size)
        if s < MIN_WORK_SIDE or s % 4 != 1:
            raise ConfigError(f"rot-cnn: size must be >= {MIN_WORK_SIDE} and 1 mod 4 (21, 25, 29, 33, ...), got {size}")
        return s
    s = max(int(shape[0]), int(shape[1]), MIN_WORK_SIDE)
    while s % 4 != 1:
        s += 1
    return s


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-2] == side and x.shape[-1] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


class GaussianPool(nn.Module):
    """Plain-torch copy of e2cnn's ``PointwiseAvgPoolAntialiased``: a fixed depthwise Gaussian blur, strided."""

    def __init__(self, filt: torch.Tensor, stride, padding) -> None:
        super().__init__()
        self.register_buffer("filter", filt.detach().clone(), persistent=False)
        self.stride = tuple(stride)
        self.padding = tuple(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.filter, stride=self.stride, padding=self.padding, groups=x.shape[1])


class GroupMaxPool(nn.Module):
    """Max over the ``group_size`` consecutive channels of each regular field (e2cnn's GroupPooling)."""

    def __init__(self, group_size: int) -> None:
        super().__init__()
        self.group_size = int(group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.reshape(b, c // self.group_size, self.group_size, h, w).amax(dim=2)


def _is_batchnorm(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


class EquivariantTrunk(nn.Module):
    """resize -> steerable convolutions -> group pooling -> global average -> dense (penultimate features)."""

    def __init__(
        self,
        side: int,
        n_rotations: int = 8,
        flip: bool = False,
        widths=(8, 16, 32),
        hidden: int = 64,
        dropout: float = 0.0,
        sigma: float = 0.66,
        kernels=(7, 5, 5, 5),
    ) -> None:
        super().__init__()
        if int(n_rotations) < 1:
            raise ConfigError(f"rot-cnn: N must be >= 1, got {n_rotations}")
        widths = [int(w) for w in widths]
        if len(widths) != 3 or min(widths) < 1:
            raise ConfigError(f"rot-cnn: widths takes three positive numbers of fields, got {widths}")
        kernels = [int(k) for k in kernels]
        if len(kernels) != 4 or min(kernels) < 3 or any(k % 2 == 0 for k in kernels):
            raise ConfigError(f"rot-cnn: kernels takes four odd sizes >= 3 (e.g. [7, 5, 5, 5]), got {kernels}")
        self.side = int(side)
        gs = gspaces.FlipRot2dOnR2(int(n_rotations)) if flip else gspaces.Rot2dOnR2(int(n_rotations))
        self.group_size = gs.fibergroup.order()
        self.in_type = enn.FieldType(gs, [gs.trivial_repr])
        w1, w2, w3 = (enn.FieldType(gs, [gs.regular_repr] * w) for w in widths)

        def block(tin, tout, k, p):
            return [
                enn.R2Conv(tin, tout, kernel_size=k, padding=p, bias=False),
                enn.InnerBatchNorm(tout),
                enn.ReLU(tout, inplace=True),
            ]

        k1, k2, k3, k4 = kernels
        # the lift trims (k1 - 3) / 2 pixels a side (29 -> 25 at 7x7) and the last convolution one (7 -> 5), the
        # middle two keep the size: every side stays odd, so both poolings stay centred (see Input size above)
        layers = [
            *block(self.in_type, w1, k1, 1),
            enn.PointwiseAvgPoolAntialiased(w1, sigma=sigma, stride=2),
            *block(w1, w2, k2, k2 // 2),
            enn.PointwiseAvgPoolAntialiased(w2, sigma=sigma, stride=2),
            *block(w2, w3, k3, k3 // 2),
            *block(w3, w3, k4, k4 // 2 - 1),
        ]
        self.net = enn.SequentialModule(*layers)
        self.gpool = enn.GroupPooling(w3)
        self.dense = nn.Sequential(
            nn.Linear(widths[2], int(hidden)),
            nn.BatchNorm1d(int(hidden)),
            nn.ELU(inplace=True),
            nn.Dropout(float(dropout)),
        )
        self.out_dim = int(hidden)
        self._mark_derived()
        self.register_load_state_dict_post_hook(_refresh_after_load)

    def _mark_derived(self) -> None:
        """Keep e2cnn's derived buffers (bases, indices, expanded filters, pooling filters) out of state_dict."""
        for m in [*self.net.modules(), *self.gpool.modules()]:
            if _is_batchnorm(m):
                continue
            m._non_persistent_buffers_set.update(m._buffers.keys())

    def train(self, mode: bool = True) -> EquivariantTrunk:
        super().train(mode)  # R2Conv re-registers its expanded filter (as a persistent buffer) on eval()
        self._mark_derived()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = enn.GeometricTensor(_resize(x, self.side), self.in_type)
        x = self.gpool(self.net(x)).tensor
        return self.dense(x.mean(dim=(2, 3)))

    def export(self) -> ExportedTrunk:
        """The same function as plain torch modules (the trunk is left in eval mode)."""
        was = self.training
        self.eval()
        layers: list[nn.Module] = []
        for m in self.net._modules.values():
            if isinstance(m, enn.PointwiseAvgPoolAntialiased):
                layers.append(GaussianPool(m.filter, m.stride, m.padding))
            elif isinstance(m, enn.ReLU):
                layers.append(nn.ReLU(inplace=True))
            else:
                layers.append(m.export())
        exported = ExportedTrunk(
            self.side, nn.Sequential(*layers), GroupMaxPool(self.group_size), copy.deepcopy(self.dense)
        )
        self.train(was)
        self._mark_derived()
        return exported.eval()


def _refresh_after_load(module: EquivariantTrunk, incompatible) -> None:
    # a trunk loaded while in eval mode still holds filters expanded from the old weights: recompute them
    if not module.training:
        for m in module.net.modules():
            if isinstance(m, enn.R2Conv):
                m.train(True)
                m.train(False)
        module._mark_derived()


class ExportedTrunk(nn.Module):
    def __init__(self, side: int, net: nn.Sequential, gpool: nn.Module, dense: nn.Module) -> None:
        super().__init__()
        self.side = side
        self.net = net
        self.gpool = gpool
        self.dense = dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gpool(self.net(_resize(x, self.side)))
        return self.dense(x.mean(dim=(2, 3)))


@register_model(
    "rot-cnn", "E(2)-steerable rotation-invariant CNN (e2cnn C_N/D_N, group pooling), exported for inference", "torch"
)
class RotCNN(TorchModel):
    architecture = {
        "N": 8,  # rotations of the group C_N (D_N with flip)
        "flip": False,  # also equivariant to reflections (D_N); off for digits (6 and 9, 2 and 5 ...)
        "widths": [4, 8, 16],  # regular fields per stage (channels = fields x N, x 2N with flip)
        "kernels": [7, 5, 5, 5],  # the four convolutions' sizes (odd): the lift, the two stages, the last
        "hidden": 64,
        "dropout": 0.1,
        "size": None,  # working side (1 mod 4); None = smallest >= the input's (29 for 28x28)
        # test-time rotations: also predict the image rotated by j/(k+1) of the group's step (360/N), j = 1..k, and
        # average the probabilities. The network is invariant to multiples of 360/N exactly; these copies sample
        # the angles between them, where interpolation makes it only approximately so. 0 = off.
        "tta_rotations": 0,
    }
    training = {
        "epochs": 12,
        "batch_size": 64,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "patience": 0,
        "augment": True,  # random rotations cover the angles between the group's 360/N steps
        "rotation": 180.0,
        "shift": 0.0,
        "scale": [1.0, 1.0],
    }
    param_specs = {
        **TORCH_SPECS,
        "N": spec("int", low=1),
        "kernels": spec("list"),
        "hidden": spec("int", low=1),
        "size": spec("none", "int", low=5),
        "tta_rotations": spec("int", low=0, high=MAX_TTA),
    }
    min_side = 0  # the trunk resizes to its own working side

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.exported_: GlyphNet | None = None

    def build_module(self, input_shape: tuple[int, int], n_classes: int) -> GlyphNet:
        p = self.params
        trunk = EquivariantTrunk(
            work_side(input_shape, p["size"]),
            int(p["N"]),
            bool(p["flip"]),
            p["widths"],
            int(p["hidden"]),
            float(p["dropout"]),
            kernels=p["kernels"],
        )
        return GlyphNet(trunk, nn.Linear(trunk.out_dim, n_classes), 0)

    def export_module(self) -> GlyphNet:
        """Plain-torch copy of the trained network (same normalisation, exported trunk, same head)."""
        if self.module_ is None:
            raise ConfigError("rot-cnn: nothing to export, fit or load the model first")
        net = GlyphNet(self.module_.features.export(), copy.deepcopy(self.module_.head), 0)
        net.norm.load_state_dict(self.module_.norm.state_dict())
        return net.to(next(self.module_.parameters()).device).eval()

    def _fit(
        self, images, labels, val_images, val_labels, *, run_dir: Path | None, callbacks: Sequence[EpochCallback] = ()
    ) -> None:
        self.exported_ = None  # a refit's temperature (calibrate=temperature) must see the new weights' export
        super()._fit(images, labels, val_images, val_labels, run_dir=run_dir, callbacks=callbacks)
        self.exported_ = self.export_module()

    def _load_weights(self, directory: Path, manifest: dict[str, Any]) -> None:
        super()._load_weights(directory, manifest)
        self.exported_ = self.export_module()

    def torch_module(self) -> nn.Module | None:
        """The export to plain torch layers (e2cnn's own do not trace to ONNX, and they predict faster)."""
        if self.module_ is None:
            return None
        if self.exported_ is None:
            self.exported_ = self.export_module()
        self.exported_.to(self._device()).eval()
        return self.exported_

    def _batch_proba(self, module: nn.Module):
        base = super()._batch_proba(module)
        k = int(self.params["tta_rotations"] or 0)
        if k < 0:
            raise ConfigError(f"rot-cnn: tta_rotations must be >= 0, got {k}")
        if k == 0:
            return base
        step = 360.0 / int(self.params["N"]) / (k + 1)

        def proba(xb: torch.Tensor) -> torch.Tensor:
            total = base(xb)
            for j in range(1, k + 1):
                total = total + base(rotate(xb, torch.full((len(xb),), step * j, device=xb.device)))
            return total / (k + 1)

        return proba

    def _manifest_extra(self) -> dict[str, Any]:
        extra = super()._manifest_extra()
        if self.module_ is not None:
            extra["work_side"] = int(self.module_.features.side)
            extra["group_order"] = int(self.module_.features.group_size)
        return extra
