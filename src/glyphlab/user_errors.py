"""The one line a user sees for an error they can act on, for the CLI and for the server's worker processes.

glyphlab's own errors say what to do; this also turns the errors of other libraries that a user causes (a
missing optional package, a full disk, a damaged file, invalid settings) into one line, and leaves a bug its
traceback (None). It sits in the bottom layer so that any layer that reports to a user can use it.
"""

from __future__ import annotations

import errno

from pydantic import ValidationError

from glyphlab.errors import FOREIGN_FILE_ERRORS, GlyphlabError
from glyphlab.extras import extra_for_module

#: a file that is not what it should be (its readers are glyphlab's loaders, which name the file; this is the net
#: for a reader that does not), and file-system errors that name their path
UNREADABLE_FILE = (*FOREIGN_FILE_ERRORS, PermissionError, FileNotFoundError)


#: errno values (and the words their messages carry) of a write that found no room
NO_ROOM = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded"}


def user_error_message(exc: BaseException) -> str | None:
    """The one line a user sees for an error they can act on; None for a bug (which keeps its traceback)."""
    no_room = next(
        (words for code, words in NO_ROOM.items() if getattr(exc, "errno", None) == code or words in str(exc)), None
    )
    if no_room and not isinstance(exc, GlyphlabError):  # a write, whatever the library that did it calls it
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"a file could not be written{where}: {no_room.lower()}; free some space and run it again"
    if isinstance(exc, GlyphlabError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        if extra := extra_for_module(top):
            return f"this command needs '{top}', which is not installed: pip install 'glyphlab[{extra}]'"
        return None
    if isinstance(exc, ValidationError):
        return "invalid settings: " + "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
        )
    if isinstance(exc, UNREADABLE_FILE):
        first = (str(exc).splitlines() or [""])[0][:300]
        return f"a file could not be read ({type(exc).__name__}{': ' + first if first else ''})"
    return None
