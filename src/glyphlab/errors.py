"""Errors a user can act on. Every message says what was wrong and what to do next.

Each is also the built-in exception it is (``ValueError`` for bad data, files or settings,
``FileNotFoundError`` for a missing run folder or file), so code that catches those catches glyphlab's.
"""

import zipfile

from safetensors import SafetensorError

#: what the readers of glyphlab's files raise on bytes that are not what they expect (a pickle planted as
#: model.skops -> BadZipFile, as model.xgb.json -> UnicodeDecodeError, a damaged .safetensors -> SafetensorError,
#: an empty file -> EOFError). The one list: load_model turns these (and the generic errors its weights readers
#: raise) into a ModelFileError that names the file; the CLI's net turns them into one line where a reader did not.
FOREIGN_FILE_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, UnicodeDecodeError, SafetensorError, EOFError)


class GlyphlabError(Exception):
    """Base class: the CLI prints these as a one-line message instead of a traceback."""


class DataError(GlyphlabError, ValueError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class ModelFileError(GlyphlabError, ValueError):
    """A model file is not glyphlab's, was tampered with, or cannot be loaded safely."""


class ConfigError(GlyphlabError, ValueError):
    """A configuration value (CLI option, recipe file, search space) is invalid."""


class RunFolderError(GlyphlabError, FileNotFoundError):
    """A run folder, or a file a run folder should hold, is missing or unreadable."""


class TrackingError(GlyphlabError, RuntimeError):
    """A step the user asked of the tracking server itself (registering a model) failed."""
