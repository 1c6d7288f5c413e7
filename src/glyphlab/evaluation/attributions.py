"""Why the model chose a class: attribution maps for the predicted class and the runner-up.

For one image the question a person asks is "why 3 and not 5?", so every explanation holds two maps of the
image's shape, one for the predicted class and one for the runner-up (or any two classes given), and their
difference. Methods:

* ``ig`` — Captum's Integrated Gradients of the class *logit* from a blank (all-zero, no ink) baseline. IG is
  linear in the explained output, so the difference of the two maps is exactly the IG of
  ``logit_a - logit_b``: "what pushed the model to a rather than b".
* ``gradcam`` — Captum's LayerGradCam on the network's last ``Conv2d`` (conv nets only), upsampled to the
  input. Coarse by nature (the last conv map of cnn-small is 24x24, of resnet-small 4x4).
* ``occlusion`` — model-agnostic: slide a window of zeros (no ink) over the image and record how much the
  class *probability* drops. Torch networks go through Captum's ``Occlusion`` when Captum is installed; every
  other model (and a network without Captum) through :func:`occlusion_map`, numpy and ``predict_proba`` only.
* ``coef`` — a linear model's coefficients as images (``logreg``: per standardised pixel, i.e. per standard
  deviation of that pixel), the same map for every image: what the class template looks like.

Networks are explained through the module that predicts (:meth:`GlyphModel.torch_module`; rot-cnn's is
its exported plain-torch network), in eval mode, without test-time augmentation. Captum is the optional
extra ``glyphlab[explain]``; occlusion and ``coef`` need nothing beyond numpy.
"""

from __future__ import annotations

import copy
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from glyphlab.errors import ConfigError
from glyphlab.models.base import GlyphModel, check_images

Method = Literal["auto", "ig", "occlusion", "gradcam", "coef"]
METHODS: tuple[str, ...] = ("auto", "ig", "occlusion", "gradcam", "coef")
#: Integrated Gradients' default number of steps (Gauss-Legendre); the server caps requests at this
IG_STEPS = 32
#: colours of the overlays: red = evidence for the class, blue = evidence against
POSITIVE_RGB = np.array([214, 39, 40], dtype=np.float32)
NEGATIVE_RGB = np.array([31, 119, 180], dtype=np.float32)


@dataclass(frozen=True)
class Explanation:
    """Attributions for N images and two classes each.

    ``attributions[i, 0]`` explains ``targets[i, 0]`` (the predicted class unless targets were given),
    ``attributions[i, 1]`` explains ``targets[i, 1]`` (the runner-up); both have the image's shape.
    """

    method: str
    classes: list[str]
    images: np.ndarray  # (N, H, W) model inputs in [0, 1]
    targets: np.ndarray  # (N, 2) class indices
    probabilities: np.ndarray  # (N, n_classes)
    attributions: np.ndarray  # (N, 2, H, W) float32
    note: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def contrast(self) -> np.ndarray:
        """(N, H, W): map of the first target minus the second ("why a and not b")."""
        return self.attributions[:, 0] - self.attributions[:, 1]

    def label(self, i: int, k: int) -> str:
        """The class name of image i's target k (0: predicted, 1: runner-up)."""
        return self.classes[int(self.targets[i, k])]

    def overlays(self, i: int) -> list[np.ndarray]:
        """Three (H, W, 3) uint8 overlays of image i: first target, second target, contrast; one colour scale."""
        maps = [self.attributions[i, 0], self.attributions[i, 1], self.contrast[i]]
        scale = max(float(np.abs(m).max()) for m in maps) or 1.0
        return [overlay_rgb(self.images[i], m, scale) for m in maps]

    def plot(self, indices: Sequence[int] | None = None, titles: Sequence[str] | None = None):
        """A matplotlib Figure: a row per image (input, both classes' maps, their difference)."""
        return plot_explanation(self, indices, titles)

    def to_png(
        self, indices: Sequence[int] | None = None, titles: Sequence[str] | None = None, dpi: int = 110
    ) -> bytes:
        """:meth:`plot` as PNG bytes (what ``glyphlab explain`` writes)."""
        return figure_png(self.plot(indices, titles), dpi)


# ----------------------------------------------------------------------------- which method


def is_network(model: GlyphModel) -> bool:
    """Whether the model declares a torch module to explain through (:meth:`GlyphModel.torch_module`)."""
    return model.torch_module() is not None


def has_captum() -> bool:
    try:
        import captum.attr  # noqa: F401  (optional extra: glyphlab[explain])
    except ImportError:
        return False
    return True


def _cannot(model: GlyphModel, method: str, why: str) -> ConfigError:
    return ConfigError(f"cannot explain '{model.name}' with {method}: {why}")


def resolve_method(model: GlyphModel, method: str) -> str:
    """``auto`` is Integrated Gradients for a network (with Captum), else occlusion; other names are checked against
    what the model's class declares (:meth:`~GlyphModel.torch_module`, :meth:`~GlyphModel.coefficient_images`)."""
    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r}: choose one of {', '.join(METHODS)}")
    net = is_network(model)
    if method == "auto":
        return "ig" if net and has_captum() else "occlusion"
    if method in ("ig", "gradcam"):
        extra = getattr(model, "extra", None)  # a network served through ONNX alone (serving.predictor.OnnxOnlyModel)
        if not net and extra:
            why = f"it needs PyTorch, not installed here: pip install 'glyphlab[{extra}]' (or use occlusion)"
            raise _cannot(model, method, why)
        if not net:
            others = "occlusion" + (" or coef" if model.coefficient_images() is not None else "")
            raise _cannot(model, method, f"it is no torch network (its class declares no torch_module()): use {others}")
        if not has_captum():
            raise _cannot(model, method, "it needs Captum: pip install 'glyphlab[explain]' (or use occlusion)")
        if method == "gradcam" and _last_conv(model.torch_module()) is None:
            raise _cannot(model, method, "it has no Conv2d layer: use ig or occlusion")
    if method == "coef" and model.coefficient_images() is None:
        why = "it is no linear model (its class declares no coefficient_images()): use occlusion"
        raise _cannot(model, method, why)
    return method


def supported_methods(model: GlyphModel) -> tuple[str, ...]:
    """The :data:`METHODS` that :func:`resolve_method` accepts for ``model`` (``auto`` always), in that order: what a
    server serving this model offers, so that its published schema names no method it would refuse."""
    out = []
    for method in METHODS:
        try:
            resolve_method(model, method)
        except ConfigError:
            continue
        out.append(method)
    return tuple(out)


def occlusion_window(shape: Sequence[int]) -> tuple[int, int]:
    """Window and stride for an input side: 4 px in steps of 2 on 28x28 (a stroke's width), 1 px on 8x8.

    The stride divides ``side - window`` so every pixel is covered by at least one window."""
    side = int(min(shape))
    window = max(1, round(side / 7))
    stride = max(1, window // 2)
    if any((int(s) - window) % stride for s in shape):
        stride = 1
    return window, stride


# ----------------------------------------------------------------------------- model-agnostic occlusion


def occlusion_map(
    predict_proba,
    images: np.ndarray,
    targets: np.ndarray,
    window: int,
    stride: int,
    baseline: float = 0.0,
    batch_size: int = 1024,
) -> np.ndarray:
    """(N, K, H, W): per pixel, the mean drop of ``p[target]`` over the windows that cover it when set to ``baseline``.

    The same rule as Captum's ``Occlusion`` (sliding window, difference averaged over the windows covering each
    pixel), in numpy, for any ``predict_proba``."""
    x = check_images(images)
    n, h, w = x.shape
    targets = np.asarray(targets, dtype=np.int64).reshape(n, -1)
    ys = list(range(0, h - window + 1, stride))
    xs = list(range(0, w - window + 1, stride))
    count = np.zeros((h, w), dtype=np.float64)
    for y0 in ys:
        for x0 in xs:
            count[y0 : y0 + window, x0 : x0 + window] += 1
    out = np.zeros((n, targets.shape[1], h, w), dtype=np.float64)
    for i in range(n):
        variants = np.repeat(x[i][None], len(ys) * len(xs) + 1, axis=0)
        k = 1
        for y0 in ys:
            for x0 in xs:
                variants[k, y0 : y0 + window, x0 : x0 + window] = baseline
                k += 1
        probs = np.concatenate(
            [
                np.asarray(predict_proba(variants[j : j + batch_size]), dtype=np.float64)
                for j in range(0, len(variants), batch_size)
            ]
        )
        drop = probs[0][None, targets[i]] - probs[1:, targets[i]]  # (windows, K)
        k = 0
        for y0 in ys:
            for x0 in xs:
                out[i, :, y0 : y0 + window, x0 : x0 + window] += drop[k][:, None, None]
                k += 1
    return (out / np.maximum(count, 1.0)).astype(np.float32)


# ----------------------------------------------------------------------------- the explainer


def _last_conv(module):
    import torch.nn as nn

    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


class Explainer:
    """Attributions for one model; networks are copied once (eval mode, no in-place ReLU) and reused.

    Safe to share between threads (a server's): the torch work runs under a lock, since Grad-CAM registers
    hooks on the shared network."""

    def __init__(self, model: GlyphModel, *, ig_steps: int = IG_STEPS) -> None:
        model.check_fitted()
        if model.input_shape_ is None:
            raise ConfigError(f"model '{model.name}' has no input shape: fit it or load a saved one")
        self.model = model
        self.classes = [str(c) for c in model.classes_ or []]
        self.input_shape = tuple(int(s) for s in model.input_shape_)
        self.ig_steps = int(ig_steps)
        self._net = None
        self._lock = threading.Lock()

    def _network(self):
        """The predicting network as plain torch, on the CPU, eval mode, ReLUs not in place (hooks need that)."""
        if self._net is None:
            import torch.nn as nn

            net = copy.deepcopy(self.model.torch_module()).cpu().eval()
            for m in net.modules():
                if isinstance(m, nn.ReLU):
                    m.inplace = False
            for p in net.parameters():
                p.requires_grad_(False)
            self._net = net
        return self._net

    def explain(
        self,
        images: np.ndarray,
        method: Method = "auto",
        targets: np.ndarray | None = None,
        *,
        steps: int | None = None,
        seed: int = 0,
    ) -> Explanation:
        """Attributions for ``images`` (N, H, W) of the model's input shape; ``targets`` (N, 2) or the top two."""
        x = check_images(images)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(f"the model takes {self.input_shape} images, got {tuple(x.shape[1:])}")
        x = np.clip(x, 0.0, 1.0)
        name = resolve_method(self.model, method)
        probs = (
            np.asarray(self.model.predict_proba(x), dtype=np.float64) if len(x) else np.zeros((0, len(self.classes)))
        )
        if targets is None:
            targets = np.argsort(-probs, axis=1, kind="stable")[:, :2]
        targets = np.asarray(targets, dtype=np.int64).reshape(len(x), -1)
        if targets.shape[1] != 2 or (len(targets) and (targets.min() < 0 or targets.max() >= len(self.classes))):
            raise ConfigError(f"targets must be (N, 2) class indices below {len(self.classes)}, got {targets.shape}")
        steps = self.ig_steps if steps is None else int(steps)
        if steps < 1:
            raise ConfigError(f"Integrated Gradients needs at least 1 step, got {steps}")
        note, params = "", {}
        if len(x) == 0:
            attr = np.zeros((0, 2, *self.input_shape), dtype=np.float32)
        elif name == "coef":
            coef = self.model.coefficient_images()
            attr = coef[targets]
            note = "the linear model's coefficients per standardised pixel (the same for every image)"
        elif name == "occlusion":
            window, stride = occlusion_window(self.input_shape)
            params = {"window": window, "stride": stride, "baseline": 0.0}
            if is_network(self.model) and has_captum():
                attr = self._torch(x, targets, "occlusion", steps, seed, window, stride)
                note = "Captum Occlusion of the class probability"
            else:
                attr = occlusion_map(self.model.predict_proba, x, targets, window, stride)
                note = "occlusion of the class probability (numpy)"
        else:
            attr = self._torch(x, targets, name, steps, seed, 0, 0)
            if name == "ig":
                params = {"steps": steps, "baseline": 0.0}
                note = "Integrated Gradients of the class logit from a blank image"
            else:
                note = "Grad-CAM on the last Conv2d, upsampled to the input"
        if is_network(self.model) and name != "occlusion":
            extra = [k for k in ("tta", "tta_rotations") if self.model.params.get(k)]
            if extra:
                note += f" (the network without {', '.join(extra)})"
        return Explanation(
            method=name,
            classes=self.classes,
            images=x,
            targets=targets,
            probabilities=probs,
            attributions=np.asarray(attr, dtype=np.float32),
            note=note,
            params=params,
        )

    def _torch(
        self, x: np.ndarray, targets: np.ndarray, name: str, steps: int, seed: int, window: int, stride: int
    ) -> np.ndarray:
        # Captum is the optional extra glyphlab[explain]: imported here so occlusion and coef work without it
        import torch
        from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion

        n, h, w = x.shape
        xt = torch.from_numpy(np.concatenate([x, x]))[:, None]  # both targets in one batch: (2N, 1, H, W)
        tt = torch.from_numpy(np.concatenate([targets[:, 0], targets[:, 1]]))
        with self._lock:
            torch.manual_seed(int(seed))
            net = self._network()
            if name == "ig":
                ig = IntegratedGradients(net)
                out = ig.attribute(
                    xt, baselines=torch.zeros_like(xt), target=tt, n_steps=steps, internal_batch_size=max(2 * n, 256)
                )
            elif name == "gradcam":
                out = LayerGradCam(net, _last_conv(net)).attribute(xt, target=tt, relu_attributions=True)
                out = LayerAttribution.interpolate(out, (h, w), interpolate_mode="bilinear")
            else:
                occ = Occlusion(lambda z: torch.softmax(net(z), dim=1))
                out = occ.attribute(
                    xt,
                    sliding_window_shapes=(1, window, window),
                    strides=(1, stride, stride),
                    baselines=0.0,
                    target=tt,
                    perturbations_per_eval=64,
                )
            arr = out.detach().float().numpy()[:, 0]
        return np.stack([arr[:n], arr[n:]], axis=1)


# ----------------------------------------------------------------------------- pictures


def overlay_rgb(image: np.ndarray, attribution: np.ndarray, scale: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8: the glyph in grey on white, red where the map is positive, blue where negative.

    Opacity grows with |attribution| / ``scale`` (default: the map's own largest magnitude)."""
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    a = np.asarray(attribution, dtype=np.float32)
    s = float(scale) if scale else float(np.abs(a).max()) or 1.0
    v = np.clip(a / s, -1.0, 1.0)
    base = (255.0 - 140.0 * img)[..., None].repeat(3, axis=2)  # ink dark grey, background white
    alpha = (np.abs(v) ** 0.7 * 0.85)[..., None]
    colour = np.where((v >= 0)[..., None], POSITIVE_RGB, NEGATIVE_RGB)
    return np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def plot_explanation(expl: Explanation, indices: Sequence[int] | None = None, titles: Sequence[str] | None = None):
    """A Figure with a row per image: the input, "why a", "why b", "a − b" (red for, blue against).

    Built on matplotlib's object API (no pyplot, no backend switch), so it works in scripts and notebooks."""
    from matplotlib.figure import Figure

    idx = list(range(len(expl.images))) if indices is None else [int(i) for i in indices]
    if not idx:
        raise ConfigError("nothing to plot: the explanation holds no images")
    fig = Figure(figsize=(7.6, 2.05 * len(idx) + 0.35), layout="constrained")
    axes = fig.subplots(len(idx), 4, squeeze=False)
    for r, i in enumerate(idx):
        a, b = expl.label(i, 0), expl.label(i, 1)
        pa, pb = expl.probabilities[i, expl.targets[i, 0]], expl.probabilities[i, expl.targets[i, 1]]
        over = expl.overlays(i)
        panels = [
            (expl.images[i], "gray_r", (titles[r] if titles else f"input #{i}")),
            (over[0], None, f"why {a} ({pa:.2f})"),
            (over[1], None, f"why {b} ({pb:.2f})"),
            (over[2], None, f"{a} rather than {b}"),
        ]
        for ax, (pic, cmap, title) in zip(axes[r], panels):
            ax.imshow(pic, cmap=cmap, vmin=0, vmax=1 if cmap else None, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{expl.method}: red = evidence for the class, blue = against", fontsize=9)
    return fig


def figure_png(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def payload(expl: Explanation, i: int = 0, digits: int = 4) -> dict[str, Any]:
    """One image's explanation as JSON-ready lists (the server's answer)."""

    def grid(a: np.ndarray) -> list[list[float]]:
        return np.round(a.astype(np.float64), digits).tolist()

    t0, t1 = int(expl.targets[i, 0]), int(expl.targets[i, 1])
    scale = max(float(np.abs(m).max()) for m in (expl.attributions[i, 0], expl.attributions[i, 1], expl.contrast[i]))
    return {
        "method": expl.method,
        "note": expl.note,
        "params": expl.params,
        "label": t0,
        "class_name": expl.classes[t0],
        "probability": float(expl.probabilities[i, t0]),
        "runner_up": {"label": t1, "class_name": expl.classes[t1], "probability": float(expl.probabilities[i, t1])},
        "input": grid(expl.images[i]),
        "attribution": grid(expl.attributions[i, 0]),
        "runner_up_attribution": grid(expl.attributions[i, 1]),
        "contrast": grid(expl.contrast[i]),
        "scale": scale,
    }
