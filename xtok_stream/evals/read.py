"""Rows of JSONL(.gz/.zst), CSV(.gz) and Parquet files on any fsspec URL, with their location.

Yields ``(location, row)`` where location is ``"line N"`` (JSONL and CSV: the 1-based line a record
starts on, header included) or ``"row N"`` (Parquet, 0-based), so loaders can name the exact spot
of a bad record. ``expand`` turns a file, folder or glob into a sorted file list.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any

import fsspec
from pyarrow import ArrowException

from ..errors import DecodeError, SourceError
from ..io.records_in import iter_lines

JSONL = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
CSV = (".csv", ".csv.gz")
PARQUET = (".parquet",)
SUFFIXES = JSONL + CSV + PARQUET


def expand(path: str, storage_options: dict[str, Any] | None = None,
           suffixes: tuple[str, ...] = SUFFIXES) -> list[str]:
    """A file URL as is; a glob or a folder listed (files with ``suffixes``), sorted."""
    opts = storage_options or {}
    try:
        fs, p = fsspec.core.url_to_fs(path, **opts)
        proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        if any(ch in path for ch in "*?["):
            found = fs.glob(p)
        elif fs.isdir(p):
            found = [f for f in fs.find(p) if f.lower().endswith(suffixes)]
        elif fs.exists(p):
            return [path]
        else:
            raise SourceError("eval data not found", url=path)
    except SourceError:
        raise
    except Exception as exc:  # any backend error, named here
        raise SourceError(f"cannot list eval data: {exc}", url=path) from exc
    if not found:
        raise SourceError(f"no {'/'.join(suffixes)} files match", url=path)
    return [f if proto in ("file", "local") else f"{proto}://{f}" for f in sorted(found)]


def _check_not_empty(url: str, opts: dict[str, Any]) -> None:
    """A zero-byte ``.gz``/``.zst`` is not a compressed stream (gzip reads it as no data): an
    error, not an eval set of 0 records."""
    if url.lower().endswith((".gz", ".zst")):
        fs, p = fsspec.core.url_to_fs(url, **opts)
        if fs.size(p) == 0:
            raise SourceError("zero-byte compressed file (not a valid .gz/.zst; a truncated "
                              "download?)", url=url)


def iter_rows(url: str, storage_options: dict[str, Any] | None = None,
              ) -> Iterator[tuple[str, dict]]:
    """``(location, row)`` of every record; a corrupt, truncated or non-UTF-8 file raises
    SourceError / DecodeError naming it (and the line, where one is known)."""
    opts = storage_options or {}
    lower = url.lower()
    where = "line 1"
    try:
        _check_not_empty(url, opts)
        if lower.endswith(JSONL):
            with fsspec.open(url, "rb", compression="infer", **opts) as f:
                for n, raw in enumerate(iter_lines(f, url=url), 1):  # zstd has no readline
                    where = f"line {n}"
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise DecodeError(f"line {n}: not UTF-8 at byte {exc.start} of the line",
                                          url=url, key=f"line {n}", field="<json>") from exc
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DecodeError(f"line {n}: invalid JSON: {exc}", url=url,
                                          key=f"line {n}", field="<json>") from exc
                    if not isinstance(row, dict):
                        raise DecodeError(f"line {n}: a JSON object is needed, got "
                                          f"{type(row).__name__}", url=url, key=f"line {n}",
                                          field="<json>")
                    yield f"line {n}", row
        elif lower.endswith(CSV):
            with fsspec.open(url, "rt", compression="infer", encoding="utf-8", newline="",
                             **opts) as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header is None:
                    raise DecodeError("empty CSV (no header)", url=url, key="line 1", field="<header>")
                start = reader.line_num + 1
                for values in reader:
                    where = f"line {start}"
                    if values:  # a blank line is no record
                        yield f"line {start}", dict(zip(header, values))
                    start = reader.line_num + 1
                    where = f"line {start}"
        elif lower.endswith(PARQUET):
            import pyarrow.parquet as pq

            with fsspec.open(url, "rb", **opts) as f:
                data = f.read()
            n = 0
            for batch in pq.ParquetFile(io.BytesIO(data)).iter_batches():
                for row in batch.to_pylist():
                    yield f"row {n}", row
                    n += 1
        else:
            raise SourceError("unknown eval file format (want .jsonl[.gz|.zst], .csv[.gz] or "
                              ".parquet)", url=url)
    except FileNotFoundError as exc:
        raise SourceError("eval data not found", url=url) from exc
    except UnicodeDecodeError as exc:  # CSV (text mode): the line is where the reader was
        raise DecodeError(f"near {where}: not UTF-8", url=url, key=where,
                          field="<text>") from exc
    except (EOFError, OSError, zlib.error, ArrowException) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"cannot read eval data near {where} (corrupt or truncated?): "
                          f"{type(exc).__name__}: {exc}", url=url) from exc
