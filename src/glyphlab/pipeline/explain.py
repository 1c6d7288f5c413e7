"""The ``explain`` step: why a model chose its class and not the runner-up, for image files or arrays.

One use case for ``glyphlab explain`` and ``gl.explain``. Files are read exactly as ``glyphlab predict``
reads them: :func:`glyphlab.data.images.prepare_file` with the image config the model's manifest records, and
the same refusal of a blank page or of several characters (:func:`glyphlab.serving.predictor.model_input`);
a TIFF that predict reads is explained, never refused by a second decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glyphlab.errors import GlyphlabError


@dataclass(frozen=True)
class ExplainSettings:
    """A saved model folder (or a fitted model), the images (files, folders or an (N, H, W) array of model
    inputs), the method (auto, ig, occlusion, gradcam, coef), Integrated Gradients' steps, and ``out``: a folder
    for one PNG per file (none: nothing written)."""

    model: Any
    images: Any
    method: str = "auto"
    steps: int = 32
    out: Path | None = None
    seed: int = 0


@dataclass(frozen=True)
class ExplainedImage:
    """One explained file: its class and the runner-up with their probabilities, and the PNG written."""

    file: Path | None
    label: str
    probability: float
    runner_up: str
    runner_up_probability: float
    png: Path | None = None


@dataclass
class Explained:
    """The explanation of every image that could be read (:class:`Explanation`, None when none could), one
    row per explained image, and the files that could not be read with why."""

    model_id: str
    method: str
    explanation: Any
    images: list[ExplainedImage] = field(default_factory=list)
    errors: dict[Path, Exception] = field(default_factory=dict)  # str() is the one-line reason
    files: list[Path] = field(default_factory=list)  # every file given, in order (none for an array)

    @property
    def note(self) -> str:
        return self.explanation.note if self.explanation is not None else ""


def _model(model: Any) -> tuple[Any, Any, str]:
    """(the model, its image config, its id) for a saved model folder or a fitted model."""
    from glyphlab.data.images import ImageConfig
    from glyphlab.models.base import GlyphModel

    if isinstance(model, GlyphModel):
        model.check_fitted()
        config = model.preprocessing_.config if model.preprocessing_ else ImageConfig.mnist_style(model.input_shape_)
        return model, config, model.name
    from glyphlab.serving.predictor import Predictor

    predictor = Predictor(model, backend="native")
    return predictor.model, predictor.image_config, predictor.model_id


def _read(files: list[Path], config: Any) -> tuple[list[np.ndarray], list[Path], dict[Path, Exception]]:
    """Each file prepared as predict prepares it; the ones that cannot be, with the one-line reason."""
    from glyphlab.data.images import DecodeLimits, prepare_file
    from glyphlab.serving.predictor import model_input

    arrays, ok, errors = [], [], {}
    for f in files:
        try:
            arrays.append(model_input(prepare_file(f, config, DecodeLimits())))
            ok.append(f)
        except (GlyphlabError, OSError) as exc:
            errors[f] = exc
    return arrays, ok, errors


def explain(settings: ExplainSettings) -> Explained:
    """Explain every image; with ``out``, write one PNG per file (input, both maps, their difference)."""
    from glyphlab.evaluation.attributions import Explainer
    from glyphlab.pipeline.inputs import image_files

    model, config, model_id = _model(settings.model)
    given: list[Path] = []
    if isinstance(settings.images, np.ndarray):
        arrays, files, errors = list(settings.images), [None] * len(settings.images), {}
    else:
        given = image_files(settings.images)
        arrays, files, errors = _read(given, config)
    if not arrays:
        return Explained(model_id, settings.method, None, [], errors, given)
    expl = Explainer(model).explain(np.stack(arrays), settings.method, steps=settings.steps, seed=settings.seed)  # type: ignore[arg-type]
    if settings.out is not None:
        settings.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, f in enumerate(files):
        png = None
        if settings.out is not None and f is not None:
            png = settings.out / f"{f.stem}-{expl.method}.png"
            png.write_bytes(expl.to_png([i], [f.name]))
        first, second = (int(t) for t in expl.targets[i, :2])
        rows.append(
            ExplainedImage(
                f,
                expl.label(i, 0),
                float(expl.probabilities[i, first]),
                expl.label(i, 1),
                float(expl.probabilities[i, second]),
                png,
            )
        )
    return Explained(model_id, expl.method, expl, rows, errors, given)


def explain_images(model: Any, images: np.ndarray | Sequence[str | Path], method: str = "auto", **kw: Any) -> Any:
    """The :class:`Explanation` of ``images`` (files read as predict reads them, or model inputs); a file that
    cannot be read raises its error, naming it."""
    done = explain(ExplainSettings(model, images, method, **kw))
    if done.errors:
        raise next(iter(done.errors.values()))
    return done.explanation
