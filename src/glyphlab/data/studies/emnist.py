"""``emnist``: the real EMNIST byclass files, merged case-insensitively to glyphs36's 36 classes, 56x56 binary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from glyphlab.data.dataset import Dataset, Split
from glyphlab.data.mnist import read_idx
from glyphlab.data.registry import register_dataset
from glyphlab.data.studies import download as fetch  # the module: load_emnist has a `download` argument
from glyphlab.data.studies.cache import ALNUM_CLASSES, check_limit, limit_indices, mnist_dir
from glyphlab.data.studies.download import EMNIST_FILES, find_emnist
from glyphlab.errors import DataError


def emnist_to_36(labels: np.ndarray) -> np.ndarray:
    """byclass labels (0-9 digits, 10-35 A-Z, 36-61 a-z) -> 36 case-insensitive classes."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() > 61):
        raise DataError(f"EMNIST byclass labels must be in 0..61, got {labels.min()}..{labels.max()}")
    return np.where(labels >= 36, labels - 26, labels)


@register_dataset(
    "emnist",
    description="EMNIST byclass, merged case-insensitively to 36 classes (0-9, A-Z), 56x56 binary",
    source=(
        "local DATA_DIR/emnist/emnist-byclass-*-idx*-ubyte(.gz), or NIST's "
        f"{fetch.EMNIST_URL} (MD5 as pinned by torchvision, or a SHA-256 you give)"
    ),
    sizes="814,255 images, 36 classes; 697,932 train / 116,323 test (resized 28 -> 56, binarised)",
)
def load_emnist(
    data_dir: Path | None = None,
    limit: int | None = None,
    size: int = 56,
    download: bool = True,
    sha256: str | None = None,
    threshold: float = 0.5,
) -> Dataset:
    """EMNIST byclass. Its IDX images are stored transposed (column-major); they are turned upright,
    resized from 28 to ``size`` (bilinear), then binarised at ``threshold``. ``limit`` is applied before."""
    limit = check_limit(limit)
    folder = mnist_dir(data_dir) / "emnist"
    stems = [s for pair in EMNIST_FILES.values() for s in pair]
    if any(find_emnist(folder, s) is None for s in stems):
        if not download:
            raise DataError(
                f"EMNIST byclass files not found in {folder}: place "
                f"{', '.join(s + '.gz' for s in stems)} there, or allow downloading"
            )
        fetch._emnist_download(folder, sha256)
    splits = {}
    for split, (img_stem, lab_stem) in EMNIST_FILES.items():
        img_path, lab_path = find_emnist(folder, img_stem), find_emnist(folder, lab_stem)
        labels = emnist_to_36(read_idx(lab_path))
        images = read_idx(img_path)
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"{img_path}: images {images.shape} do not fit labels {labels.shape}")
        keep = limit_indices(labels, len(labels), limit, 0)
        imgs = np.ascontiguousarray(images[keep].transpose(0, 2, 1), dtype=np.float32) / 255.0
        if imgs.shape[1] != size:
            f = size / imgs.shape[1]
            imgs = ndimage.zoom(imgs, (1, f, f), order=1, grid_mode=True, mode="grid-constant")
        splits[split] = Split((imgs > threshold).astype(np.float32), labels[keep])
    return Dataset(
        name="emnist",
        classes=list(ALNUM_CLASSES),
        splits=splits,
        source=str(folder),
        meta={"emnist": {"subset": "byclass", "merged": "case-insensitive", "size": size, "limit": limit}},
    )
