"""Moved: the one image path is :mod:`glyphlab.data.images` (the dataset readers, ``predict`` and ``serve`` share
it). These names stay importable from here for code written against the old module; new code imports them
from :mod:`glyphlab.data.images`."""

from glyphlab.data.images import (  # noqa: F401  (re-exports)
    ALLOWED_FORMATS,
    DecodeLimits,
    ImageInputError,
    ImageTooLargeError,
    NoInkError,
    decode_image,
)
