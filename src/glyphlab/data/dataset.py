"""The one in-memory dataset shape every part of glyphlab reads.

Images are float32 arrays of shape (N, H, W) with values in [0, 1] (0 = background, 1 = ink),
labels are int64 indices into ``classes``. Splits are named (``train``, ``val``, ``test``); a split
may be unlabeled (``labels is None``), e.g. a Kaggle-style hidden test file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from glyphlab.errors import DataError


@dataclass
class Split:
    images: np.ndarray
    labels: np.ndarray | None

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.float32)
        if self.images.ndim != 3:
            raise DataError(f"images must have shape (N, H, W), got {self.images.shape}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != (len(self.images),):
                raise DataError(f"{len(self.images)} images but labels of shape {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> Split:
        return Split(self.images[index], None if self.labels is None else self.labels[index])


@dataclass
class Dataset:
    name: str
    classes: list[str]
    splits: dict[str, Split]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split_name, split in self.splits.items():
            if split.labels is not None and len(split.labels):
                lo, hi = int(split.labels.min()), int(split.labels.max())
                if lo < 0 or hi >= len(self.classes):
                    raise DataError(
                        f"split '{split_name}' of '{self.name}' has labels in [{lo}, {hi}] "
                        f"but only {len(self.classes)} classes"
                    )

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise DataError(f"dataset '{self.name}' has no split '{split}' (it has: {', '.join(self.splits)})")
        return self.splits[split]

    @property
    def image_shape(self) -> tuple[int, int]:
        first = next(iter(self.splits.values()))
        return tuple(first.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_splits(self, splits: dict[str, Split], **meta: Any) -> Dataset:
        """A new dataset with other splits; meta entries are merged (variants record themselves)."""
        return replace(self, splits=splits, meta={**self.meta, **meta})

    def map_images(self, fn, suffix: str, **meta: Any) -> Dataset:
        """Apply ``fn(images, split_name) -> images`` to every split, keeping labels."""
        splits = {k: Split(fn(s.images, k), s.labels) for k, s in self.splits.items()}
        out = self.with_splits(splits, **meta)
        out.name = f"{self.name}+{suffix}"
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v):,}" for k, v in self.splits.items())
        h, w = self.image_shape
        return f"Dataset({self.name!r}: {self.num_classes} classes, {h}x{w} images, {sizes})"

    def _repr_html_(self) -> str:
        """Jupyter: name, image size, classes and the images per split as an HTML table."""
        import html

        h, w = self.image_shape
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{len(v):,}</td>"
            f"<td>{'yes' if v.labels is not None else 'no'}</td></tr>"
            for k, v in self.splits.items()
        )
        classes = ", ".join(self.classes[:40]) + (" ..." if self.num_classes > 40 else "")
        return (
            f"<p><b>{html.escape(self.name)}</b>: {h}×{w} images, {self.num_classes} classes "
            f"({html.escape(classes)})</p><table><thead><tr><th>split</th><th>images</th><th>labeled</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )

    def summary(self) -> dict[str, Any]:
        sizes = {k: len(v) for k, v in self.splits.items()}
        counts = {}
        for k, s in self.splits.items():
            if s.labels is not None:
                counts[k] = np.bincount(s.labels, minlength=self.num_classes).tolist()
        return {
            "name": self.name,
            "classes": self.classes,
            "image_shape": list(self.image_shape),
            "split_sizes": sizes,
            "class_counts": counts,
            "source": self.source,
            "meta": self.meta,
        }
