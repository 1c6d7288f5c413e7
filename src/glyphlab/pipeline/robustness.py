"""The ``robustness`` step: accuracy of a run's saved models with the test images rotated by each angle.

One use case for ``glyphlab robustness`` and ``gl.robustness``; the scoring is
:func:`glyphlab.evaluation.robustness.robustness` (it writes robustness.csv and robustness.png into the run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glyphlab.evaluation.robustness import RobustnessResult, parse_angles
from glyphlab.evaluation.robustness import robustness as _robustness

__all__ = ["RobustnessResult", "RobustnessSettings", "robustness"]


@dataclass(frozen=True)
class RobustnessSettings:
    """A run folder; angles as ``START:STOP:STEP`` (stop excluded), ``0,90,180`` or a list of degrees; the test
    split of ``dataset`` instead of the run's saved test images; ``limit`` a fixed sample of that many images."""

    run: Path
    angles: str | Sequence[float] = "0:360:15"
    dataset: str | None = None
    data_dir: str | Path | None = None
    models: Sequence[str] | None = None
    limit: int | None = None
    seed: int = 0


def robustness(settings: RobustnessSettings) -> RobustnessResult:
    """Score every saved model at every angle; the result holds the accuracy table and the files written."""
    angles = parse_angles(settings.angles) if isinstance(settings.angles, str) else [float(a) for a in settings.angles]
    return _robustness(
        settings.run,
        angles,
        dataset=settings.dataset,
        data_dir=settings.data_dir,
        models=settings.models,
        limit=settings.limit,
        seed=settings.seed,
    )
