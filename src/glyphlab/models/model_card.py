"""MODEL_CARD.md: what a saved model is, what it was trained and tested on, and where not to trust it.

A model card (Mitchell et al. 2019) travels inside the model folder, listed and hashed in the manifest like
every other file, so whoever receives the folder (or asks the server's ``GET /model``) reads the same facts
the run measured. This module only *renders* the card from facts given to it; ``save_model`` writes a
card from the model alone (no evaluation), and a run (``pipeline/model_card.py``) rewrites it with the
data, the splits, the test metrics with their intervals, the calibration and the known confusions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MODEL_CARD = "MODEL_CARD.md"
#: the sections every card has, in this order (a section without facts says so instead of disappearing)
SECTIONS = (
    "Model",
    "Data",
    "Splits",
    "Preprocessing",
    "Metrics",
    "Calibration",
    "Known confusions",
    "Intended use",
    "Limits",
)
NOT_EVALUATED = (
    "Not recorded: this model was saved outside a glyphlab run (`model.save()`), so no test "
    "evaluation travels with it. `glyphlab run` or `glyphlab evaluate` measure it."
)


def render_model_card(title: str, sections: Mapping[str, str], summary: str = "") -> str:
    """The card's Markdown: a title, an optional one-paragraph summary and every section of :data:`SECTIONS`."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown model-card section(s): {', '.join(sorted(unknown))}")
    out = [f"# Model card: {title}", ""]
    if summary:
        out += [summary.strip(), ""]
    for name in SECTIONS:
        body = (sections.get(name) or "").strip() or "Not recorded."
        out += [f"## {name}", "", body, ""]
    return "\n".join(out).rstrip() + "\n"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def preprocessing_section(manifest: Mapping[str, Any]) -> str:
    """How pixels become the model's input, as the manifest records it (the same record predict and serve use)."""
    shape = "×".join(str(s) for s in manifest.get("input_shape") or []) or "?"
    raw = manifest.get("preprocessing")
    head = (
        f"Input: {shape} grey-level images as float arrays in [0, 1], ink = 1 (background 0). "
        "Networks normalise with the training mean and standard deviation inside the saved module."
    )
    if not isinstance(raw, Mapping) or not raw:  # save_model always records it: a card of a hand-made manifest
        return head
    rows = []
    for k, v in raw.items():  # one level of nesting (the image config) becomes one row per setting
        items = v.items() if isinstance(v, Mapping) else [(None, v)]
        rows += [[f"{k}.{sub}" if sub else k, x if isinstance(x, str) else json.dumps(x)] for sub, x in items]
    return (
        head
        + "\n\nRecorded in `manifest.json` (`preprocessing`), applied by `glyphlab predict` and `serve`:\n\n"
        + md_table(["setting", "value"], rows)
    )


def model_section(manifest: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    params = manifest.get("params") or {}
    changed = {k: v for k, v in params.items() if defaults is None or defaults.get(k) != v}
    extra = manifest.get("extra") or {}
    lines = [
        f"- registry model: `{manifest.get('model')}`",
        f"- saved: {manifest.get('created', '?')} by glyphlab {(manifest.get('versions') or {}).get('glyphlab', '?')}",
    ]
    if extra.get("n_parameters"):
        lines.append(f"- parameters (weights): {int(extra['n_parameters']):,}")
    if extra.get("history"):
        lines.append(f"- trained for {len(extra['history'])} epochs")
    if changed:
        lines.append(
            "- settings that differ from the model's defaults: "
            + ", ".join(f"`{k}={json.dumps(v)}`" for k, v in sorted(changed.items()))
        )
    return "\n".join(lines)


def basic_sections(manifest: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A card from the manifest alone: what ``save_model`` writes for a model saved outside a run."""
    classes = [str(c) for c in manifest.get("classes") or []]
    temperature = (manifest.get("extra") or {}).get("temperature")
    return {
        "Model": model_section(manifest, defaults),
        "Data": f"{len(classes)} classes: {', '.join(classes[:62])}{' …' if len(classes) > 62 else ''}. "
        "The training data is not recorded for a model saved outside a glyphlab run.",
        "Splits": "Not recorded (saved outside a glyphlab run).",
        "Preprocessing": preprocessing_section(manifest),
        "Metrics": NOT_EVALUATED,
        "Calibration": (
            f"Temperature scaling on: logits are divided by T = {float(temperature):.4f} before the softmax."
            if temperature not in (None, 1.0)
            else "No calibration step."
        )
        + " Calibration error not measured (no test evaluation).",
        "Known confusions": NOT_EVALUATED,
        "Intended use": intended_use(classes),
        "Limits": LIMITS,
    }


def intended_use(classes: list[str]) -> str:
    return (
        f"Classifying one isolated, roughly centred handwritten character at a time into one of these "
        f"{len(classes)} classes, from images like the training data (see Data and Preprocessing), e.g. "
        "behind `glyphlab serve`'s drawing page or for batch `glyphlab predict`. Probabilities are meant "
        "for ranking and for a confidence threshold (see Calibration), with a person reviewing low-confidence "
        "answers. Not for decisions about people, identity or signatures.\n\n"
        f"It also reads lines of these characters (a number, a code): `glyphlab read`, `gl.read` and "
        f"`POST /reading` find the characters of one picture of a line, classify each with this model and give "
        f"the string, with each character's box and probability. What a line can hold is these {len(classes)} "
        f"classes ({_charset(classes)}); `--charset`, `--length` and `--pattern` narrow it."
    )


def _charset(classes: list[str]) -> str:
    """The classes as a charset: ``0-9`` for the ten digits, else the classes themselves (a long list cut)."""
    if classes == [str(i) for i in range(10)]:
        return "the digits 0-9"
    return "".join(classes[:62]) + (" …" if len(classes) > 62 else "")


LIMITS = "\n".join(
    [
        "- Closed set: every input is put in one of the known classes, even a character, word or scribble from "
        "outside them; there is no reject option besides a confidence threshold.",
        "- The test figures hold for images drawn from the same source and preprocessing as the test split; other "
        "scanners, stroke widths, rotations or backgrounds can lower accuracy without warning "
        "(`glyphlab robustness` measures rotations).",
        "- One character per image for `glyphlab predict` and `/prediction`; a line of characters is read by "
        "`glyphlab read` and `/reading`, left to right, characters side by side (not joined cursive writing).",
        "- Training labels may hold errors (MNIST does, `glyphlab audit` finds many); the model has learned them.",
    ]
)
