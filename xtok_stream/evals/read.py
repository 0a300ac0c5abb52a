"""Rows of JSONL(.gz/.zst), CSV(.gz) and Parquet files on any fsspec URL, with their location.

Yields ``(location, row)`` where location is ``"line N"`` (JSONL and CSV: the 1-based line a record
starts on, header included) or ``"row N"`` (Parquet, 0-based), so loaders can name the exact spot
of a bad record. ``expand`` turns a file, folder or glob into a sorted file list.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import fsspec

from ..errors import DecodeError, SourceError

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
    except Exception as exc:  # noqa: BLE001 - any backend error, named here
        raise SourceError(f"cannot list eval data: {exc}", url=path) from exc
    if not found:
        raise SourceError(f"no {'/'.join(suffixes)} files match", url=path)
    return [f if proto in ("file", "local") else f"{proto}://{f}" for f in sorted(found)]


def iter_rows(url: str, storage_options: dict[str, Any] | None = None,
              ) -> Iterator[tuple[str, dict]]:
    opts = storage_options or {}
    lower = url.lower()
    try:
        if lower.endswith(JSONL):
            with fsspec.open(url, "rt", compression="infer", encoding="utf-8", **opts) as f:
                for n, line in enumerate(f, 1):
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
                    if values:  # a blank line is no record
                        yield f"line {start}", dict(zip(header, values))
                    start = reader.line_num + 1
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
