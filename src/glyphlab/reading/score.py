"""Readings measured against labels (``glyphlab read --labels``): exact strings, character error rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from glyphlab.errors import ConfigError
from glyphlab.reading.results import Reading


# -- measuring against labels (``glyphlab read --labels``) -------------------------------------------------------
def edit_ops(truth: str, read: str) -> list[tuple[str, str]]:
    """The aligned (true, read) characters of a minimal edit script: ``("5", "")`` a character missed,
    ``("", "5")`` one read in excess, ``("5", "6")`` a substitution, equal pairs kept."""
    n, m = len(truth), len(read)
    d = np.zeros((n + 1, m + 1), np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (truth[i - 1] != read[j - 1]))
    ops, i, j = [], n, m
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (truth[i - 1] != read[j - 1]):
            ops.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            ops.append((truth[i - 1], ""))
            i -= 1
        else:
            ops.append(("", read[j - 1]))
            j -= 1
    return ops[::-1]


@dataclass
class ReadScore:
    """Readings against their true strings: exact-string accuracy, character error rate (edit distance over
    the true strings' length), the most confused characters and one row per picture."""

    exact: float
    cer: float
    n: int
    confused: list[tuple[str, str, int]]  #: (true, read, count), "" a missed or excess character, most first
    rows: list[dict[str, Any]] = field(default_factory=list)


def read_labels(path: str | Path) -> dict[str, str]:
    """A labels CSV (``file,text`` with a header): file (relative to the CSV's folder) -> true text."""
    import csv

    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"file", "text"} <= set(reader.fieldnames):
                raise ConfigError(f"{path}: a labels CSV needs the columns file,text (got {reader.fieldnames})")
            return {str((path.parent / row["file"]).resolve()): (row["text"] or "") for row in reader}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the labels ({exc.strerror or exc})") from None


def score_readings(
    readings: Sequence[Reading], truth: dict[str, str], errors: dict[str, str] | None = None
) -> ReadScore:
    """Score ``readings`` (and pictures that could not be read: ``errors``, source -> message, counted as read
    empty) against ``truth`` (resolved path -> text); pictures without a label are left out."""
    from collections import Counter

    got = {str(Path(r.source).resolve()): r.text for r in readings}
    for source in errors or {}:
        got.setdefault(str(Path(source).resolve()), "")
    rows, edits, chars, confused = [], 0, 0, Counter()
    for key, text in got.items():
        if key not in truth:
            continue
        true = truth[key]
        ops = edit_ops(true, text)
        dist = sum(a != b for a, b in ops)
        confused.update((a, b) for a, b in ops if a != b)
        edits += dist
        chars += len(true)
        rows.append({"file": key, "true": true, "read": text, "exact": text == true, "edits": dist})
    if not rows:
        raise ConfigError(
            "none of the pictures read has a label in the labels CSV (its file column names them "
            "relative to the CSV's folder)"
        )
    exact = float(np.mean([r["exact"] for r in rows]))
    return ReadScore(
        exact, edits / max(1, chars), len(rows), [(a, b, c) for (a, b), c in confused.most_common(10)], rows
    )


def write_score(score: ReadScore, out: str | Path) -> list[Path]:
    """``out/readings.csv`` (one row per picture), ``out/confused.csv`` and ``out/misread.html`` (the misread
    pictures with what was read, self-contained)."""
    import base64
    import csv
    import html
    import io

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "readings.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["file", "true", "read", "exact", "edits"])
        w.writeheader()
        w.writerows(score.rows)
    with (out / "confused.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["true", "read", "count"])
        w.writerows(score.confused)
    items = []
    for row in [r for r in score.rows if not r["exact"]][:200]:
        try:
            with Image.open(row["file"]) as im:
                im = im.convert("RGB")
                im.thumbnail((480, 160))
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=80)
            src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        except OSError:
            src = ""
        items.append(
            f'<figure><img src="{src}" alt=""><figcaption>{html.escape(Path(row["file"]).name)}: '
            f"true <b>{html.escape(row['true'])}</b>, read <b>{html.escape(row['read'])}</b></figcaption></figure>"
        )
    confused = "".join(
        f"<tr><td>{html.escape(a) or '∅'}</td><td>{html.escape(b) or '∅'}</td><td>{c}</td></tr>"
        for a, b, c in score.confused
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>glyphlab read: misread pictures</title>"
        f"<style>body{{font-family:sans-serif;margin:2em}}figure{{display:inline-block;margin:.5em}}"
        f"img{{border:1px solid #ccc}}td{{padding:0 1em}}</style>"
        f"<h1>glyphlab read</h1><p>{score.n} pictures: exact-string accuracy {score.exact:.3f}, character "
        f"error rate {100 * score.cer:.2f} %</p><h2>Most confused (∅: missed or excess)</h2>"
        f"<table><tr><th>true</th><th>read</th><th>count</th></tr>{confused}</table>"
        f"<h2>Misread ({score.n - sum(r['exact'] for r in score.rows)})</h2>{''.join(items)}"
    )
    (out / "misread.html").write_text(page, encoding="utf-8")
    return [out / "readings.csv", out / "confused.csv", out / "misread.html"]
