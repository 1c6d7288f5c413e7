"""Kaggle-style submissions: a trained model's predictions for a dataset's unlabeled ``hidden`` split.

Seed 002's competition scored a CSV with a header ``Id,Category`` and one row per image of the unlabeled
test file, in file order. A recipe asks for one with ``[outputs] submission = "LABEL"`` (a model label of
the recipe); ``glyphlab recipe`` then writes ``RUN/submission-LABEL.csv`` after training.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from glyphlab.data.dataset import Dataset
from glyphlab.errors import ConfigError, DataError
from glyphlab.fileio import atomic_open
from glyphlab.runfolder import RunFolder

HIDDEN_SPLIT = "hidden"


def submission_label(outputs: dict[str, Any], model_labels: list[str]) -> str | None:
    """The model label a recipe's ``outputs.submission`` names (checked before anything is trained)."""
    label = outputs.get("submission")
    if label is None:
        return None
    if not isinstance(label, str) or label not in model_labels:
        raise ConfigError(
            f"outputs.submission = {label!r} must be one of the recipe's model labels ({', '.join(model_labels)})"
        )
    return label


def write_submission(
    run_dir: str | Path,
    model_label: str,
    dataset: Dataset,
    *,
    split: str = HIDDEN_SPLIT,
    first_id: int = 0,
    path: str | Path | None = None,
) -> Path:
    """Predict ``dataset[split]`` with the model saved in ``run_dir/models/LABEL/model``; write ``Id,Category``.

    ``Id`` counts the rows of the unlabeled file from ``first_id``; ``Category`` is the predicted class name.
    Returns the CSV's path (``run_dir/submission-LABEL.csv`` unless ``path`` is given).
    """
    from glyphlab.models.persistence import load_model

    run_dir = Path(run_dir)
    folder = RunFolder(run_dir).model(model_label)
    model_dir = folder.model_path
    if not folder.has_saved_model:
        raise ConfigError(f"no saved model '{model_label}' in {folder.path.parent} (did that model train?)")
    if split not in dataset.splits:
        raise DataError(
            f"dataset '{dataset.name}' has no '{split}' split to write a submission for "
            f"(it has: {', '.join(dataset.splits)})"
        )
    model = load_model(model_dir)
    images = dataset[split].images
    pred = model.predict(images) if len(images) else []
    classes = model.classes_ or dataset.classes
    out = Path(path) if path else run_dir / f"submission-{model_label}.csv"
    with atomic_open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Id", "Category"])
        for i, p in enumerate(pred):
            w.writerow([first_id + i, classes[int(p)]])
    return out
