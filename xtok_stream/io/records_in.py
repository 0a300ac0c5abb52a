"""Read text records from Parquet, Arrow IPC (file or stream) / Feather, JSONL (optionally
.gz/.zst) and Hugging Face ``datasets.save_to_disk`` folders, on any fsspec URL.

Two layers:

* ``list_inputs`` turns what the user typed (paths, URLs, globs, brace ranges, folders) into a
  list of ``InputFile`` - one per data file, with its format, size and a stable *stem* used for
  default document keys. A ``save_to_disk`` folder (``state.json`` + ``data-XXXXX-of-XXXXX.arrow``,
  Arrow *stream* format) expands to its data files in ``state.json`` order; a ``DatasetDict``
  folder (``dataset_dict.json`` + one sub-folder per split) needs ``split=`` unless it has one
  split. The ``datasets`` package is not needed.
* ``iter_rows(inp, columns, start, stop, offset=, line=)`` streams the records of rows
  ``[start, stop)`` of one file as ``(row, where, record)``; ``row`` counts records (blank JSONL
  lines are not records), ``where`` names the row or line for error messages. JSONL can start at
  a byte ``offset`` (with the ``line`` number there) so a shard in the middle of a big file does
  not re-parse what comes before it; Parquet skips whole row groups; Arrow IPC files skip batches.

``iter_records`` (the old one-call API) is kept: ``(doc_id, text)`` for every record of every
input, the key being the ``id_field`` value or ``{stem}-{row:08d}``.
"""

from __future__ import annotations

import json
import posixpath
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from braceexpand import braceexpand

from ..errors import ConfigError, DecodeError, SourceError

JSONL = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
ARROW = (".arrow", ".feather", ".ipc")
PARQUET = (".parquet",)
HF_STATE, HF_INFO, HF_DICT = "state.json", "dataset_info.json", "dataset_dict.json"


@dataclass(frozen=True)
class InputFile:
    url: str      # full URL (plain path for local files)
    fmt: str      # "parquet" | "arrow" | "jsonl"
    size: int     # bytes on storage (part of the plan fingerprint)
    stem: str     # prefix of default keys: file name without extensions (+ dataset/split for HF)


def fmt_of(url: str) -> str | None:
    lower = url.lower()
    for fmt, suffixes in (("parquet", PARQUET), ("arrow", ARROW), ("jsonl", JSONL)):
        if lower.endswith(suffixes):
            return fmt
    return None


def _stem(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def _join(fs, path: str) -> str:
    proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return path if proto in ("file", "local") else f"{proto}://{path}"


def _hf_files(fs, folder: str, split: str | None, spec: str) -> list[tuple[str, str]]:
    """(path, stem) of the data files of a save_to_disk folder (Dataset or DatasetDict)."""
    if fs.exists(f"{folder}/{HF_DICT}"):
        splits = json.loads(fs.cat_file(f"{folder}/{HF_DICT}"))["splits"]
        if split is None:
            if len(splits) != 1:
                raise ConfigError(f"{spec} is a DatasetDict with splits {splits}; choose one "
                                  "with --split")
            split = splits[0]
        if split not in splits:
            raise ConfigError(f"{spec} has no split {split!r} (has {splits}; --split)")
        return [(p, f"{posixpath.basename(folder)}-{split}-{s}")
                for p, s in _hf_files(fs, f"{folder}/{split}", None, spec)]
    state = json.loads(fs.cat_file(f"{folder}/{HF_STATE}"))
    if state.get("_indices_data_files"):
        raise SourceError("save_to_disk folder has an indices mapping (a select/shuffle view); "
                          "save it with flatten_indices() first", url=spec)
    names = [d["filename"] for d in state.get("_data_files", [])]
    if not names:  # older layouts: list the folder
        names = sorted(posixpath.basename(p) for p in fs.ls(folder, detail=False)
                       if p.endswith(".arrow"))
    return [(f"{folder}/{n}", _stem(n)) for n in names]


def list_inputs(specs: list[str], storage_options: dict[str, Any] | None = None,
                split: str | None = None) -> list[InputFile]:
    """Expand input specs into data files: braces, globs (sorted), folders (sorted listing of
    known formats, or a save_to_disk layout). The order of the specs themselves is kept."""
    opts = storage_options or {}
    out: list[InputFile] = []
    seen: set[str] = set()
    for spec in specs:
        for url in braceexpand(spec):
            try:
                fs, path = url_to_fs(url, opts)
                if any(ch in url for ch in "*?["):
                    paths = sorted(fs.glob(path))
                    if not paths:
                        raise SourceError("no input matches the glob", url=url)
                else:
                    paths = [path.rstrip("/")]
                found: list[tuple[str, str]] = []
                for p in paths:
                    if fs.isdir(p):
                        if fs.exists(f"{p}/{HF_DICT}") or fs.exists(f"{p}/{HF_STATE}"):
                            found.extend(_hf_files(fs, p, split, url))
                        else:
                            listed = sorted(q for q in fs.find(p) if fmt_of(q))
                            if not listed:
                                raise SourceError("folder holds no .parquet/.arrow/.jsonl files",
                                                  url=_join(fs, p))
                            found.extend((q, _stem(q)) for q in listed)
                    else:
                        found.append((p, _stem(p)))
                for p, stem in found:
                    full = _join(fs, p)
                    fmt = fmt_of(full)
                    if fmt is None:
                        raise SourceError("unknown input format (want .parquet, .arrow/.feather, "
                                          ".jsonl[.gz|.zst] or a save_to_disk folder)", url=full)
                    if full not in seen:
                        seen.add(full)
                        out.append(InputFile(full, fmt, int(fs.size(p)), stem))
            except FileNotFoundError as exc:
                raise SourceError("input not found", url=url) from exc
    return out


# -- reading ---------------------------------------------------------------------------------
def _read_errors() -> tuple[type[BaseException], ...]:
    """What a corrupt input raises while being read: Arrow's errors, OSError (gzip's
    BadGzipFile), EOFError (a truncated .gz/.zst), zlib's and zstandard's errors."""
    errs: list[type[BaseException]] = [pa.ArrowException, OSError, EOFError, zlib.error]
    try:
        import zstandard

        errs.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errs)


READ_ERRORS = _read_errors()


def read_error(inp: InputFile, exc: BaseException) -> SourceError:
    """The SourceError for a corrupt or truncated input (re-raise ours unchanged)."""
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return SourceError("input not found", url=inp.url)
    what = "compressed " if inp.url.lower().endswith((".gz", ".zst")) else ""
    return SourceError(f"cannot read {what}{inp.fmt} input (corrupt or truncated?): "
                       f"{type(exc).__name__}: {exc}", url=inp.url)


def url_to_fs(url: str, opts: dict[str, Any]):
    """``fsspec.core.url_to_fs`` with a SourceError for an unknown protocol or a missing
    backend package (``gs://`` without gcsfs)."""
    try:
        return fsspec.core.url_to_fs(url, **opts)
    except (ImportError, ValueError) as exc:
        raise SourceError(f"cannot open this URL: {exc} (install the fsspec backend of its "
                          "protocol, e.g. gcsfs for gs://, s3fs for s3://)", url=url) from exc


def _open(inp: InputFile, opts: dict[str, Any]):
    return fsspec.open(inp.url, "rb", compression="infer" if inp.fmt == "jsonl" else None, **opts)


MAX_RECORD_MB = 256.0  # default bound on one JSONL line (--max-record-mb)


def iter_lines(f, chunk: int = 1 << 20, *, max_bytes: int | None = None, url: str = "",
               first_line: int = 1) -> Iterator[bytes]:
    """Lines (with their newline) of a binary stream that may only support ``read`` (the zstd
    reader has no ``readline``). Linear in the input: a line spanning many chunks is joined
    once, not re-concatenated per chunk. A line longer than ``max_bytes`` raises DecodeError
    naming ``url`` and its line (counted from ``first_line``) before it is held in memory."""
    limit = int(MAX_RECORD_MB * 1e6) if max_bytes is None else max_bytes
    pieces: list[bytes] = []  # the unfinished line, across chunks
    held, line = 0, first_line

    def too_long(n: int) -> DecodeError:
        return DecodeError(f"line {line}: a record of more than {limit:,} bytes ({n:,} so far); "
                           "raise --max-record-mb to allow it", url=url, key=f"line {line}",
                           field="<line>")

    while data := f.read(chunk):
        parts = data.split(b"\n")
        tail = parts.pop()
        if parts:
            if pieces:
                pieces.append(parts[0])
                parts[0] = b"".join(pieces)
                pieces, held = [], 0
            for part in parts:
                if len(part) >= limit:
                    raise too_long(len(part) + 1)
                yield part + b"\n"
                line += 1
        if tail:
            pieces.append(tail)
            held += len(tail)
            if held > limit:
                raise too_long(held)
    if pieces:
        yield b"".join(pieces)


def skip_to(f, offset: int) -> None:
    """Position a binary stream at ``offset``: seek where possible, else read and discard."""
    try:
        if f.seekable():
            f.seek(offset)
            return
    except (AttributeError, OSError):
        pass
    while offset > 0:
        got = f.read(min(offset, 1 << 22))
        if not got:
            break
        offset -= len(got)


def _arrow_batches(inp: InputFile, f, columns: list[str],
                   start: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row, batch) of an Arrow IPC file or stream, skipping batches before ``start``
    without decoding them where the file format allows (random access)."""
    try:
        reader = pa.ipc.open_file(f)
    except pa.ArrowInvalid:
        f.seek(0)
        reader = None
    row = 0
    if reader is not None:
        _check_columns(inp, reader.schema.names, columns)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            if row + batch.num_rows > start:
                yield row, batch.select(columns)
            row += batch.num_rows
        return
    stream = pa.ipc.open_stream(f)
    _check_columns(inp, stream.schema.names, columns)
    for batch in stream:
        if row + batch.num_rows > start:
            yield row, batch.select(columns)
        row += batch.num_rows


def _check_columns(inp: InputFile, names: list[str], columns: list[str]) -> None:
    missing = [c for c in columns if c not in names]
    if missing:
        flag = "--text-field or --messages-field" if missing[0] == columns[0] else "--id-field"
        raise DecodeError(f"no column(s) {missing}; has {names} ({flag})",
                          url=inp.url, key="schema", field=missing[0])


def iter_rows(inp: InputFile, columns: list[str], start: int = 0, stop: int | None = None,
              storage_options: dict[str, Any] | None = None, *, offset: int | None = None,
              line: int | None = None,
              max_record_bytes: int | None = None) -> Iterator[tuple[int, str, Any]]:
    """``(row, where, record)`` for rows ``[start, stop)`` of one input. For tables ``record``
    is a dict of ``columns``; for JSONL it is the parsed JSON value (a dict if well-formed).
    ``offset``/``line``: byte offset and 1-based line number of row ``start`` (JSONL only);
    ``max_record_bytes``: bound on one JSONL line (default ``MAX_RECORD_MB``)."""
    opts = storage_options or {}
    stop = float("inf") if stop is None else stop
    try:
        with _open(inp, opts) as f:
            if inp.fmt == "jsonl":
                row, line_no = 0, 0
                if offset is not None:
                    skip_to(f, offset)
                    row, line_no = start, (line or 1) - 1
                for raw in iter_lines(f, max_bytes=max_record_bytes, url=inp.url,
                                      first_line=line_no + 1):
                    line_no += 1
                    if not raw.strip():
                        continue
                    if row >= stop:
                        return
                    if row >= start:
                        where = f"line {line_no}"
                        try:
                            rec = json.loads(raw)
                        except ValueError as exc:
                            raise DecodeError(f"{where}: invalid JSON: {exc}", url=inp.url,
                                              key=where, field=columns[0]) from exc
                        yield row, where, rec
                    row += 1
                return
            if inp.fmt == "parquet":
                pf = pq.ParquetFile(f)
                _check_columns(inp, pf.schema_arrow.names, columns)
                groups, first, row = [], None, 0
                for g in range(pf.metadata.num_row_groups):
                    n = pf.metadata.row_group(g).num_rows
                    if row + n > start and row < stop:
                        groups.append(g)
                        first = row if first is None else first
                    row += n
                if not groups:
                    return
                batches = ((None, b) for b in pf.iter_batches(row_groups=groups, columns=columns))
                row = first
            else:
                batches, row = _arrow_batches(inp, f, columns, start), None
            for first_row, batch in batches:
                if first_row is not None:
                    row = first_row
                if first_row is None and batch.num_rows == 0:
                    continue
                if row >= stop:
                    return
                lo, hi = max(start - row, 0), min(stop - row, batch.num_rows)
                cols = [batch.column(c).slice(lo, hi - lo).to_pylist() for c in columns]
                for i, values in enumerate(zip(*cols), start=row + lo):
                    yield i, f"row {i}", dict(zip(columns, values))
                row += batch.num_rows
    except READ_ERRORS as exc:
        if isinstance(exc, SourceError):
            raise
        raise read_error(inp, exc) from exc


def check_record(url: str, where: str, rec: Any, text_field: str,
                 id_field: str | None) -> tuple[str | None, str]:
    """``(doc_id or None, text)`` of one record, or a DecodeError naming the row and field."""
    if not isinstance(rec, dict) or text_field not in rec or rec[text_field] is None:
        raise DecodeError(f"{where}: record has no '{text_field}' (set --text-field)",
                          url=url, key=where, field=text_field)
    text = rec[text_field]
    if not isinstance(text, str):
        raise DecodeError(f"{where}: '{text_field}' is {type(text).__name__}, not text",
                          url=url, key=where, field=text_field)
    _check_utf8(url, where, text, text_field)
    return record_id(url, where, rec, id_field), text


def record_id(url: str, where: str, rec: dict, id_field: str | None) -> str | None:
    """The record's ``--id-field`` value as a checked tar-safe id (None without the option)."""
    if id_field is None:
        return None
    if rec.get(id_field) is None:
        raise DecodeError(f"{where}: record has no '{id_field}' (set --id-field)",
                          url=url, key=where, field=id_field)
    doc_id = str(rec[id_field])
    check_id(url, where, doc_id, id_field)
    return doc_id


def check_id(url: str, where: str, doc_id: str, id_field: str) -> None:
    """An id must be non-empty valid Unicode to become a tar key (``io.shards.safe_key``)."""
    if not doc_id:
        raise DecodeError(f"{where}: '{id_field}' is empty, so it cannot be a sample key (fix "
                          "the row, or drop --id-field for {stem}-{row} keys)", url=url,
                          key=where, field=id_field)
    _check_utf8(url, where, doc_id, id_field)


def _check_utf8(url: str, where: str, value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON's "\ud800" escapes decode to lone surrogates
        raise DecodeError(f"{where}: '{field}' holds a lone surrogate "
                          f"{value[exc.start:exc.end]!r} at char {exc.start}, not encodable as "
                          "UTF-8 (fix the row)", url=url, key=where, field=field) from exc


def default_key(stem: str, row: int) -> str:
    return f"{stem}-{row:08d}"


def iter_records(
    inputs: list[str], *, text_field: str = "text", id_field: str | None = None,
    storage_options: dict[str, Any] | None = None, split: str | None = None,
) -> Iterator[tuple[str, str]]:
    """``(doc_id, text)`` of every record of every input, in order."""
    cols = [text_field] + ([id_field] if id_field else [])
    for inp in list_inputs(inputs, storage_options, split) if inputs else []:
        for row, where, rec in iter_rows(inp, cols, storage_options=storage_options):
            doc_id, text = check_record(inp.url, where, rec, text_field, id_field)
            yield (doc_id if doc_id is not None else default_key(inp.stem, row)), text
