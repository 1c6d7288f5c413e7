"""Datasets: the in-memory shape, loaders, file formats, variants and splits."""

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.registry import list_datasets, load_dataset, register_dataset

__all__ = ["Dataset", "Split", "list_datasets", "load_dataset", "register_dataset"]
