"""Resuming a run: the one check both front doors use (``glyphlab run --resume RUN``, ``gl.run(resume=True)``).

A resumed run is the run that was started: it continues with the settings in its ``config.json``. A setting
given beside the resume (a seed, a model list) would either be silently ignored or silently rewrite the run's
record, so it is refused, naming what was given; where the data lives (``data_dir``) is not a setting of the
run (the files may have moved) and may change.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from glyphlab.errors import GlyphlabError
from glyphlab.pipeline.run import RunConfig
from glyphlab.runfolder import CONFIG


def resume_config(
    run_dir: Path,
    given: Sequence[str] = (),
    data_dir: str | None = None,
    *,
    how: str = "--resume",
    new_run: str = "--out NEW_FOLDER",
) -> RunConfig:
    """The config a resumed ``run_dir`` continues with; ``given`` names the settings the caller passed (as the
    caller spells them: ``--seed`` or ``seed=``), and any is refused. ``how`` and ``new_run`` word the message
    for the front door that asked."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise GlyphlabError(f"no run folder {run_dir} to resume: it does not exist")
    if not (run_dir / CONFIG).is_file():
        raise GlyphlabError(f"{run_dir} has no {CONFIG}: it is not a glyphlab run folder")
    if given:
        names = ", ".join(given)
        raise GlyphlabError(
            f"{how} continues {run_dir} with the settings in its {CONFIG}; {names} cannot change them. "
            f"Drop {names}, or start a new run with {new_run}"
        )
    cfg = RunConfig.from_file(run_dir / CONFIG)
    if data_dir:
        cfg.data_dir = str(data_dir)
    return cfg
