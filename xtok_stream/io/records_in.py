"""Read text records from Parquet, Arrow IPC and JSONL (optionally .gz/.zst) on any fsspec URL.

Yields ``(doc_id, text)`` in file order, streaming (Parquet by row batches, JSONL by line), with
errors that name the file, row or line, and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DecodeError, SourceError
from .urls import expand_urls

JSONL = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
ARROW = (".arrow", ".feather", ".ipc")


def _stem(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def _check(url: str, where: str, row: Any, text_field: str, id_field: str | None):
    if not isinstance(row, dict) or text_field not in row:
        raise DecodeError(f"{where}: record has no '{text_field}' (set --text-field)",
                          url=url, key=where, field=text_field)
    text = row[text_field]
    if not isinstance(text, str):
        raise DecodeError(f"{where}: '{text_field}' is {type(text).__name__}, not text",
                          url=url, key=where, field=text_field)
    if id_field is not None:
        if row.get(id_field) is None:
            raise DecodeError(f"{where}: record has no '{id_field}' (set --id-field)",
                              url=url, key=where, field=id_field)
        return str(row[id_field]), text
    return None, text


def _table_rows(url: str, batches, text_field: str, id_field: str | None):
    row = 0
    stem = _stem(url)
    for batch in batches:
        for rec in batch.to_pylist():
            doc_id, text = _check(url, f"row {row}", rec, text_field, id_field)
            yield (doc_id if doc_id is not None else f"{stem}-{row:08d}"), text
            row += 1


def iter_records(
    inputs: list[str], *, text_field: str = "text", id_field: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[tuple[str, str]]:
    opts = storage_options or {}
    for url in expand_urls(inputs, opts) if inputs else []:
        lower = url.lower()
        cols = [text_field] + ([id_field] if id_field else [])
        try:
            if lower.endswith(".parquet"):
                with fsspec.open(url, "rb", **opts) as f:
                    pf = pq.ParquetFile(f)
                    missing = [c for c in cols if c not in pf.schema_arrow.names]
                    if missing:
                        raise DecodeError(f"no column(s) {missing}; has {pf.schema_arrow.names}",
                                          url=url, key="schema", field=missing[0])
                    yield from _table_rows(url, pf.iter_batches(columns=cols), text_field, id_field)
            elif lower.endswith(ARROW):
                with fsspec.open(url, "rb", **opts) as f:
                    try:
                        reader = pa.ipc.open_file(f)
                        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                    except pa.ArrowInvalid:
                        f.seek(0)
                        batches = iter(pa.ipc.open_stream(f))
                    yield from _table_rows(url, batches, text_field, id_field)
            elif lower.endswith(JSONL):
                with fsspec.open(url, "rt", compression="infer", encoding="utf-8", **opts) as f:
                    stem = _stem(url)
                    for line_no, line in enumerate(f, 1):
                        if not line.strip():
                            continue
                        try:
                            rec = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise DecodeError(f"line {line_no}: invalid JSON: {exc}",
                                              url=url, key=f"line {line_no}", field=text_field) from exc
                        doc_id, text = _check(url, f"line {line_no}", rec, text_field, id_field)
                        yield (doc_id if doc_id is not None else f"{stem}-{line_no:08d}"), text
            else:
                raise SourceError("unknown input format (want .parquet, .arrow/.feather, "
                                  ".jsonl[.gz|.zst])", url=url)
        except FileNotFoundError as exc:
            raise SourceError("input not found", url=url) from exc
