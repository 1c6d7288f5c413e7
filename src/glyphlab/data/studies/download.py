"""The EMNIST downloader: NIST's ``gzip.zip``, checked against a pinned digest before its files are unpacked."""

from __future__ import annotations

import zipfile
from pathlib import Path

from glyphlab.data.mnist import download_checked, find_idx_file
from glyphlab.errors import DataError
from glyphlab.fileio import write_bytes

EMNIST_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
#: MD5 of NIST's gzip.zip as torchvision pins it (torchvision.datasets.EMNIST.md5, the digest the field checks
#: this file against). glyphlab could not download the 562 MB file to pin a SHA-256 of its own; a user who has
#: one passes it as the dataset option ``sha256=...`` and it is checked instead.
EMNIST_ZIP_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"
EMNIST_FILES = {
    "train": ("emnist-byclass-train-images-idx3-ubyte", "emnist-byclass-train-labels-idx1-ubyte"),
    "test": ("emnist-byclass-test-images-idx3-ubyte", "emnist-byclass-test-labels-idx1-ubyte"),
}


def find_emnist(folder: Path, stem: str) -> Path | None:
    return find_idx_file(stem, (folder, folder / "gzip"))  # NIST's zip unpacks into gzip/


def _emnist_download(folder: Path, sha256: str | None) -> None:
    expected, algorithm = (sha256.lower(), "sha256") if sha256 else (EMNIST_ZIP_MD5, "md5")
    wanted = [s for pair in EMNIST_FILES.values() for s in pair]
    zpath = folder / "gzip.zip"
    if not zpath.is_file():
        try:
            download_checked([EMNIST_URL], zpath, expected, progress=True, algorithm=algorithm)
        except DataError as e:
            raise DataError(f"{e}\nOr place {', '.join(w + '.gz' for w in wanted)} in {folder} yourself.") from None
    try:
        with zipfile.ZipFile(zpath) as zf:
            for stem in wanted:
                member = f"gzip/{stem}.gz"
                write_bytes(folder / f"{stem}.gz", zf.read(member))
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{zpath}: not NIST's EMNIST gzip.zip ({e}); delete it and try again") from None
