"""The seed studies' own datasets, each one command away (``glyphlab run --dataset NAME``). The package is
``studies`` (the five reports in shared/seeds), since ``seed`` is everywhere else an RNG argument.

* ``mnist-back-rand`` (seed 002): 12,000 train / 50,000 test MNIST digits on a uniform random background,
  stored transposed in the Kaggle files' layout (a 785-column train CSV with the label last, a 784-column
  unlabeled test CSV); the unlabeled copy of the test set is the ``hidden`` split a submission predicts.
* ``mnist-70k-resplit`` (seed 003): all 70,000 MNIST digits re-split 56,000 train / 14,000 test.
* ``mnist-csv`` (seed 004): MNIST as an images CSV plus a labels CSV (70,000 rows), read back with the pair
  reader; MNIST's own 10,000 test digits are the test split.
* ``glyphs36`` (seed 001): 30,134 generated binary 56x56 digits and letters in 36 strongly imbalanced
  classes, rendered from TrueType fonts and distorted; split 22,634 / 2,500 / 5,000.
* ``emnist``: the real EMNIST byclass files, merged case-insensitively to the same 36 classes, 56x56 binary.

Every loader takes ``limit`` (keep that many images per split, stratified, chosen before anything expensive
is done, so quick recipes and tests run on a few hundred images). Files a loader generates are written once
into ``data_dir/NAME/`` (``data_dir/NAME/limit-N/`` with a limit) atomically (:mod:`glyphlab.fileio`),
and regenerated when their ``protocol.json`` does not match.

One module per protocol (:mod:`.back_rand`, :mod:`.resplit`, :mod:`.mnist_csv`, :mod:`.glyphs36`,
:mod:`.emnist`) over the shared :mod:`.cache` layer; :mod:`.fonts` renders glyphs from TrueType fonts and
:mod:`.download` fetches EMNIST. Importing this package registers every protocol's dataset.
"""

from __future__ import annotations

from glyphlab.data.studies.back_rand import (
    BACK_RAND_SEED,
    BACK_RAND_SIZES,
    back_rand_indices,
    load_mnist_back_rand,
    load_mnist_back_rand_source,
)
from glyphlab.data.studies.cache import (
    ALNUM_CLASSES,
    DIGIT_CLASSES,
    PARSED,
    limit_indices,
)
from glyphlab.data.studies.download import EMNIST_FILES, EMNIST_URL, EMNIST_ZIP_MD5
from glyphlab.data.studies.emnist import emnist_to_36, load_emnist
from glyphlab.data.studies.fonts import font_files, glyph_templates
from glyphlab.data.studies.glyphs36 import (
    GLYPHS_SEED,
    GLYPHS_SPLIT,
    GLYPHS_TOTAL,
    glyphs36_class_counts,
    glyphs36_splits,
    load_glyphs36,
    render_glyphs,
)
from glyphlab.data.studies.mnist_csv import CSV_IMAGES, CSV_LABELS, CSV_SEED, load_mnist_csv
from glyphlab.data.studies.resplit import RESPLIT_SEED, RESPLIT_TEST, load_mnist_70k_resplit

__all__ = [
    "ALNUM_CLASSES",
    "BACK_RAND_SEED",
    "BACK_RAND_SIZES",
    "CSV_IMAGES",
    "CSV_LABELS",
    "CSV_SEED",
    "DIGIT_CLASSES",
    "EMNIST_FILES",
    "EMNIST_URL",
    "EMNIST_ZIP_MD5",
    "GLYPHS_SEED",
    "GLYPHS_SPLIT",
    "GLYPHS_TOTAL",
    "PARSED",
    "RESPLIT_SEED",
    "RESPLIT_TEST",
    "back_rand_indices",
    "emnist_to_36",
    "font_files",
    "glyph_templates",
    "glyphs36_class_counts",
    "glyphs36_splits",
    "limit_indices",
    "load_emnist",
    "load_glyphs36",
    "load_mnist_70k_resplit",
    "load_mnist_back_rand",
    "load_mnist_back_rand_source",
    "load_mnist_csv",
    "render_glyphs",
]
