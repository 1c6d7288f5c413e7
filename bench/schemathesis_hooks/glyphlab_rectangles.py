"""A schemathesis hook (``SCHEMATHESIS_HOOKS=glyphlab_rectangles``) that teaches the fuzzer the one rule of a JSON
image that the published schema says only in words: every row as long as the others.

JSON Schema can say it only by one ``anyOf`` branch per width, and 512 widths stop schemathesis' coverage phase
(see ``glyphlab.serving.schemas.image_schema``). So, for schema-valid (positive) cases only, each generated image
keeps the first ``n`` numbers of every row, ``n`` its shortest row: still valid by the schema, now rectangular.
Negative cases are left alone (shortening rows could cut out the very value that made one invalid).
"""

from __future__ import annotations

from typing import Any

import schemathesis


def _rectangle(image: Any) -> Any:
    if not isinstance(image, list) or not image or not all(isinstance(r, list) and r for r in image):
        return image
    width = min(len(r) for r in image)
    return [r[:width] for r in image]


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    if "pixels" in case.body:
        case.body["pixels"] = _rectangle(case.body["pixels"])
    if isinstance(case.body.get("images"), list):
        case.body["images"] = [_rectangle(im) for im in case.body["images"]]
