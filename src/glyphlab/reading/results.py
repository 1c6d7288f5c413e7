"""What a reading is (characters, lines, the reading of a picture), its refusals, and the charset parser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from glyphlab.data.images import (
    ImageInputError,
)
from glyphlab.errors import ConfigError

NO_INK = (
    "no ink: the image is blank (nothing stands out from its background), so there is nothing to read; "
    "write or photograph a number or a code"
)
SEVERAL_LINES = (
    "several lines: the picture holds {n} lines of writing one above the other; crop it to one "
    "line, or read each line (lines='each', the default; glyphlab read prints one string per line)"
)


class SeveralLinesError(ImageInputError):
    """The picture holds several lines of writing, and one line was asked for."""


@dataclass(frozen=True)
class Char:
    """One character read: ``box`` (top, left, bottom, right) in the picture's pixels, exclusive ends."""

    label: str
    probability: float
    runner_up: str | None
    runner_up_probability: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Line:
    text: str
    confidence: float  #: the path score's probability of the text against the other readings kept (calibrated)
    chars: list[Char]
    matches: bool = True  #: the constraints (charset, length, pattern) are met; else the best reading anyway


@dataclass(frozen=True)
class Reading:
    """What :func:`read` found in one picture: one :class:`Line` per line of writing, top to bottom."""

    source: str
    lines: list[Line]
    note: str = ""
    #: each character's model input, in the order of :attr:`chars` (what was classified: for its explanation)
    inputs: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def confidence(self) -> float:
        return float(np.prod([line.confidence for line in self.lines])) if self.lines else 0.0

    @property
    def chars(self) -> list[Char]:
        return [c for line in self.lines for c in line.chars]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "text": self.text,
            "confidence": self.confidence,
            "lines": [asdict(line) for line in self.lines],
            **({"note": self.note} if self.note else {}),
        }


# -- constraints ---------------------------------------------------------------------------------------------
def parse_charset(charset: str | None, classes: Sequence[str]) -> np.ndarray | None:
    """A charset like ``0-9``, ``A-Z0-9`` or ``0123456789`` -> a boolean mask over ``classes`` (None: all)."""
    if charset is None or charset == "":
        return None
    allowed: set[str] = set()
    i = 0
    while i < len(charset):
        if i + 2 < len(charset) and charset[i + 1] == "-":
            a, b = charset[i], charset[i + 2]
            if ord(a) > ord(b):
                raise ConfigError(f"charset range {a}-{b} runs backwards")
            allowed.update(chr(c) for c in range(ord(a), ord(b) + 1))
            i += 3
        else:
            allowed.add(charset[i])
            i += 1
    mask = np.array([c in allowed for c in classes])
    if not mask.any():
        raise ConfigError(f"charset {charset!r} allows none of the model's classes ({', '.join(classes)})")
    return mask
