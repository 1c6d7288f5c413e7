"""What data a step works on, said once: the dataset, where its files are, its loader's options, the variants
applied on top and their seed.

``RunConfig``, ``SearchConfig`` and ``AuditConfig`` inherit :class:`DataSpec`, so its fields stay top-level
keys of their ``config.json`` (the format runs have always written), and every step that loads a dataset
with variants (run, evaluate, audit, search, eda, robustness, int8 calibration) goes through
:meth:`DataSpec.load`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from glyphlab.data.dataset import Dataset
from glyphlab.data.registry import resolve_dataset


@dataclass
class DataSpec:
    #: a registered dataset name (``glyphlab datasets``) or a path to a file or folder glyphlab reads
    dataset: str = "digits"
    #: where registered datasets are downloaded and cached (default: ``GLYPHLAB_DATA`` or the user cache)
    data_dir: str | None = None
    #: the loader's options (``--dataset-option KEY=VALUE``)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    #: a variant string such as ``"rotate:-180:180,subset:3000"`` (data/variants.py), applied in order
    variants: str = ""
    #: the seed of the variants (and, in the configs that embed this spec, of their splits and models)
    seed: int = 0

    def load(self) -> Dataset:
        """The dataset with its variants applied: the one place a step turns settings into images."""
        ds = resolve_dataset(self.dataset, self.data_dir, **self.dataset_options)
        if self.variants:
            from glyphlab.data.variants import apply_variants  # local: scipy.ndimage, needed only for variants

            ds = apply_variants(ds, self.variants, seed=self.seed)
        return ds

    def data_fields(self) -> dict[str, Any]:
        """This spec's own fields (the options copied), to build another step's config on the same data."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(DataSpec)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Self:
        """The config a ``config.json`` holds; keys this version does not know (e.g. ``layout``) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        return cls.from_dict(json.loads(Path(path).read_text()))
