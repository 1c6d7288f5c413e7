"""Result files written as rows come: JSON lines, CSV, Parquet (by the output's suffix), and resumable.

JSON lines and CSV are appended and flushed chunk by chunk, so a killed job leaves every finished row on disk
(a half-written last line is cut off when the job is resumed). Parquet keeps its index in a footer written at the
end, so rows go, a row group at a time, to a temporary file beside the output that replaces it when the job
ends (or stops on an error); a killed Parquet job keeps the previous file, and its resume rewrites the old rows
and appends the new (use JSON lines or CSV for a job of hours). Every format has a ``file`` column: what a
resume reads.

Rows are JSON-shaped dicts (what JSON lines hold as they are); CSV and Parquet take them through a ``flatten``
function into the columns of a :data:`Schema` (``str``, ``int``, ``float``, ``bool``, or ``json``: nested values
as JSON text).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from glyphlab.errors import ConfigError, DataError

#: column name -> one of str, int, float, bool, json
Schema = dict[str, str]
Row = dict[str, Any]
Flatten = Callable[[Row], Row]
#: output suffixes and their format
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
#: rows buffered into one Parquet row group
PARQUET_ROW_GROUP = 16_384


class RowWriter(Protocol):
    path: Path

    def write(self, rows: list[Row]) -> None: ...

    def close(self) -> None: ...


def output_format(path: str | Path) -> str:
    """The format an output path's suffix names, or one line saying which suffixes there are."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {path}: end its name with .jsonl, .csv or .parquet")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError(
                "writing .parquet needs pyarrow: pip install 'glyphlab[parquet]' (or write .jsonl or .csv)"
            ) from None
    return fmt


def open_writer(path: str | Path, schema: Schema, flatten: Flatten, *, resume: bool = False) -> RowWriter:
    """A writer for ``path``; an existing file is refused unless ``resume`` (then rows are added to it)."""
    path = Path(path)
    fmt = output_format(path)
    if path.exists() and not resume:
        raise ConfigError(f"{path} already exists: pass --resume (resume=True) to add to it, or remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        return JsonlWriter(path)
    if fmt == "csv":
        return CsvWriter(path, schema, flatten)
    return ParquetWriter(path, schema, flatten)


def done_files(path: str | Path) -> set[str]:
    """The ``file`` of every row an earlier run wrote to ``path`` (empty when there is none)."""
    path = Path(path)
    if not path.exists():
        return set()
    fmt = output_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return set(pq.read_table(path, columns=["file"]).column("file").to_pylist())
        except Exception as exc:  # pyarrow's errors have no common public base
            raise DataError(f"{path} is not a readable Parquet file of results ({exc}); remove it") from None
    _cut_partial_line(path)
    with open(path, encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            return {row["file"] for row in csv.DictReader(fh) if row.get("file")}
        return {_json_line(line, path, n)["file"] for n, line in enumerate(fh, 1) if line.strip()}


def _json_line(line: str, path: Path, n: int) -> Row:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict) or "file" not in row:
        raise DataError(f"line {n} of {path} is not a result row (JSON with a 'file'); is it another file?")
    return row


def _cut_partial_line(path: Path) -> None:
    """Drop a last line that a killed writer left without its newline (the row is written again on resume)."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        step, end = 65_536, size
        while end > 0:
            start = max(0, end - step)
            fh.seek(start)
            cut = fh.read(end - start).rfind(b"\n")
            if cut >= 0:
                fh.truncate(start + cut + 1)
                return
            end = start
        fh.truncate(0)


class JsonlWriter:
    """One JSON object a line, appended and flushed per chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, rows: list[Row]) -> None:
        self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _cell(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if kind == "json" else value


class CsvWriter:
    """The schema's columns, a header first (when the file is new or empty), appended and flushed per chunk."""

    def __init__(self, path: Path, schema: Schema, flatten: Flatten) -> None:
        self.path, self.schema, self.flatten = path, schema, flatten
        new = not path.exists() or path.stat().st_size == 0
        self._fh = open(path, "a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._fh, lineterminator="\n")
        if new:
            self._csv.writerow(list(schema))

    def write(self, rows: list[Row]) -> None:
        for r in rows:
            flat = self.flatten(r)
            self._csv.writerow([_cell(flat.get(c), kind) for c, kind in self.schema.items()])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _arrow_schema(schema: Schema):
    import pyarrow as pa

    types = {"str": pa.string(), "json": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    return pa.schema([(name, types[kind]) for name, kind in schema.items()])


class ParquetWriter:
    """Row groups into a temporary file beside the output, which replaces it at close (see the module doc)."""

    def __init__(self, path: Path, schema: Schema, flatten: Flatten) -> None:
        import pyarrow.parquet as pq

        self.path, self.schema, self.flatten = path, schema, flatten
        self._arrow = _arrow_schema(schema)
        self._tmp = path.with_name(f".{path.name}.part")
        self._writer = pq.ParquetWriter(self._tmp, self._arrow)
        self._rows: list[Row] = []
        if path.exists():  # a resume: the rows written so far come first
            for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_ROW_GROUP):
                self._writer.write_batch(batch.cast(self._arrow))

    def write(self, rows: list[Row]) -> None:
        self._rows += [self.flatten(r) for r in rows]
        if len(self._rows) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            columns = {
                c: [_cell(r.get(c), kind) if kind == "json" and r.get(c) is not None else r.get(c) for r in self._rows]
                for c, kind in self.schema.items()
            }
            self._writer.write_table(pa.table(columns, schema=self._arrow))
            self._rows = []

    def close(self) -> None:
        """Commit every row written so far (also when the job stopped on an error: they are right, and a resume
        reads them)."""
        try:
            self._flush()
            self._writer.close()
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
