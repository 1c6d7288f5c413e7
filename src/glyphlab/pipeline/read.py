"""The ``read`` step: the string of characters in each picture (a number, a code), for files and folders.

One use case for ``glyphlab read``: each picture goes through :func:`glyphlab.reading.read_one` (the same
steps as ``gl.read`` and ``POST /reading``), a picture that cannot be read is kept with its reason instead of
stopping the others, and with ``labels`` the readings are scored against the true strings and written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glyphlab.errors import GlyphlabError


@dataclass(frozen=True)
class ReadSettings:
    """A saved glyph model, the pictures (files or folders), the constraints on each line (``charset``
    ``"0-9"``, ``length``, a regex ``pattern``), a labels CSV (file,text) to score against and the folder its
    score is written to, the backend, and the largest picture in pixels."""

    model: Path
    images: list[Path]
    charset: str | None = None
    length: int | None = None
    pattern: str | None = None
    labels: Path | None = None
    report: Path = Path("reading-report")
    backend: str = "auto"
    max_pixels: int = 4_000_000


@dataclass
class ReadFiles:
    """Every picture's reading as a dict (``Reading.to_dict()``, or ``source`` and ``error``, with ``no_ink``
    for a blank one), the model that read them, and with labels the score and the files written."""

    model_id: str
    backend: str
    image_config: dict[str, Any]
    rows: list[dict[str, Any]]
    errors: dict[str, str] = field(default_factory=dict)
    score: Any = None
    written: list[Path] = field(default_factory=list)


def read_files(settings: ReadSettings) -> ReadFiles:
    """Read every picture; score and write the score when labels are given."""
    from glyphlab.data.images import DecodeLimits, NoInkError
    from glyphlab.pipeline.inputs import image_files
    from glyphlab.reading import read_labels, read_one, score_readings, write_score
    from glyphlab.serving.predictor import Predictor

    predictor = Predictor(settings.model, backend=settings.backend)  # type: ignore[arg-type]
    truth = read_labels(settings.labels) if settings.labels is not None else None
    limits = DecodeLimits(max_bytes=max(5_000_000, settings.max_pixels * 4), max_pixels=settings.max_pixels)
    constraints = {"charset": settings.charset, "length": settings.length, "pattern": settings.pattern}
    readings, errors, rows = [], {}, []
    for f in image_files(settings.images):
        try:
            r = read_one(predictor, f, limits=limits, **constraints)
            readings.append(r)
            rows.append(r.to_dict())
        except NoInkError as exc:
            errors[str(f)] = str(exc)
            rows.append({"source": str(f), "error": str(exc), "no_ink": True})
        except (GlyphlabError, OSError) as exc:
            errors[str(f)] = str(exc)
            rows.append({"source": str(f), "error": str(exc)})
    done = ReadFiles(predictor.model_id, predictor.backend, predictor.image_config.to_dict(), rows, errors)
    if truth is not None:
        done.score = score_readings(readings, truth, errors)
        done.written = write_score(done.score, settings.report)
    return done
