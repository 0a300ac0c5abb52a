"""The conversion plan: which rows of which input go into which output shard.

Planning is a pure function of (sorted input list, their sizes, the config), done before any
shard is written, so every engine (process pool, Ray, array job) writes the same bytes:

1. ``scan_file`` (one task per input, run by the engine) counts the rows of one input and, when
   the config needs it, the rows kept by ``--min-chars``, each kept row's estimated tar size
   (``--shard-size-mb``), a hash of its id (duplicate check) and, for JSONL, its byte offset and
   line number (so a shard task can start in the middle of a file). Parquet and Arrow IPC files
   with nothing to filter or measure are counted from metadata alone.
2. ``make_plan`` cuts the kept rows, in input order, into shards: every ``samples_per_shard``
   rows, or - with ``shard_size_mb`` - right after the first row whose estimated size makes the
   shard reach the target. A shard is a list of *slices* ``[file, start, stop, offset, line]``:
   raw row ranges that the shard task re-reads and re-filters (the count is checked).

Worked example, ``--samples-per-shard 3``, ``--min-chars 5``::

    a.parquet rows:  0:"hello!" 1:"hi" 2:"howdy" 3:"greetings"    kept: 0 2 3
    b.jsonl   rows:  0:"salut tout" 1:"yo"                         kept: 0
    shard-000000.tar = a[0:4]  (3 samples: rows 0, 2, 3)
    shard-000001.tar = b[0:1]  (1 sample)

The plan is cached as ``{out}/_xtok/plan.json`` under ``plan_id`` (a hash of the config and
of the inputs' URLs, formats, sizes and stems): a re-run or an array task with the same inputs
and config loads it instead of scanning again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError, DecodeError, SourceError
from ..io.records_in import (
    MAX_RECORD_MB,
    READ_ERRORS,
    InputFile,
    _open,
    check_id,
    default_key,
    iter_lines,
    iter_rows,
    read_error,
)
from ..io.shards import safe_key, shard_name
from .sample import sample_of

PLAN_VERSION = 1
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_FIELD = re.compile(r"[A-Za-z0-9-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class ConvertConfig:
    """What shapes the output; everything here is part of ``plan_id`` and the manifest."""

    text_field: str = "text"
    id_field: str | None = None
    min_chars: int = 0
    samples_per_shard: int | None = None   # one of these two; both None -> 1000 samples
    shard_size_mb: float | None = None
    prefix: str = "shard"
    split: str | None = None
    max_record_mb: float = MAX_RECORD_MB  # bound on one JSONL line; a longer one is an error
    messages_field: str | None = None  # conversations instead of text (convert/sample.py)

    def __post_init__(self):
        if self.messages_field is not None and not _FIELD.fullmatch(self.messages_field):
            raise ConfigError(f"--messages-field {self.messages_field!r} is not a plain name "
                              "(letters, digits, '.', '_', '-'; not starting with '.' or '_'): "
                              "it is the tar member extension the chat readers read "
                              "(chat.messages_field)")
        if not _PREFIX.fullmatch(self.prefix):
            raise ConfigError(f"--prefix {self.prefix!r} is not a plain file name (letters, "
                              "digits, '.', '_', '-'; not starting with '.'): shards are written "
                              "directly under --out")
        if not self.max_record_mb > 0:
            raise ConfigError(f"--max-record-mb must be > 0, got {self.max_record_mb}")
        if self.samples_per_shard is not None and self.shard_size_mb is not None:
            raise ConfigError("give --samples-per-shard or --shard-size-mb, not both")
        if self.samples_per_shard is not None and self.samples_per_shard < 1:
            raise ConfigError(f"--samples-per-shard must be >= 1, got {self.samples_per_shard}")
        if self.shard_size_mb is not None and self.shard_size_mb <= 0:
            raise ConfigError(f"--shard-size-mb must be > 0, got {self.shard_size_mb}")

    @property
    def per_shard(self) -> int | None:
        if self.shard_size_mb is None:
            return self.samples_per_shard or 1000
        return None

    @property
    def columns(self) -> list[str]:
        return [self.messages_field or self.text_field] + ([self.id_field] if self.id_field else [])

    def as_dict(self) -> dict:
        """The fields, less ``messages_field`` when unset: a text convert keeps the
        ``plan_id`` (and manifest) it had before conversations existed."""
        d = asdict(self)
        if d["messages_field"] is None:
            del d["messages_field"]
        return d

    def sample_of(self, url: str, where: str, rec: Any) -> tuple[str | None, str, str, int]:
        return sample_of(url, where, rec, text_field=self.text_field, id_field=self.id_field,
                         messages_field=self.messages_field)


def tar_size(nbytes: np.ndarray, keylen: np.ndarray | int) -> np.ndarray:
    """Estimated tar bytes of ``{key}.txt`` members: a 512-byte header, the data padded to 512,
    and a PAX header pair when the member name exceeds ustar's 100 characters."""
    nbytes = np.asarray(nbytes, dtype=np.int64)
    pax = np.where(np.asarray(keylen) + 4 > 100, 1024, 0)
    return 512 + (nbytes + 511) // 512 * 512 + pax


def _id_hash(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")


@dataclass
class FileScan:
    """Per-input planning facts; arrays are indexed by *kept* row."""

    rows: int
    kept: int
    keep: np.ndarray | None = None      # row numbers of kept rows (None: all rows kept)
    sizes: np.ndarray | None = None     # estimated tar bytes per kept row (size mode)
    id_hashes: np.ndarray | None = None  # blake2b-64 of the ids (with --id-field)
    offsets: np.ndarray | None = None   # JSONL: byte offset of each kept row
    lines: np.ndarray | None = None     # JSONL: 1-based line number of each kept row


def _needs(cfg: ConvertConfig) -> tuple[bool, bool]:
    """(need the text, need the id) while planning."""
    if cfg.messages_field is not None:  # every conversation is checked before any shard
        return True, cfg.id_field is not None
    return cfg.min_chars > 0 or cfg.shard_size_mb is not None, cfg.id_field is not None


def scan_file(inp: InputFile, cfg: ConvertConfig, storage_options: dict[str, Any]) -> FileScan:
    """Planning facts of one input (runs as an engine task); a corrupt or truncated input
    raises SourceError naming it."""
    try:
        return _scan(inp, cfg, storage_options)
    except READ_ERRORS as exc:
        if isinstance(exc, SourceError):
            raise
        raise read_error(inp, exc) from exc


def _scan(inp: InputFile, cfg: ConvertConfig, storage_options: dict[str, Any]) -> FileScan:
    need_text, need_id = _needs(cfg)
    if inp.fmt == "jsonl":
        return _scan_jsonl(inp, cfg, storage_options, need_text, need_id)
    if not (need_text or need_id):
        return FileScan(rows=(n := _count_rows(inp, storage_options)), kept=n)
    if cfg.messages_field is not None:
        return _scan_rows(inp, cfg, storage_options)
    texts, ids = [], []
    for batch in _table_batches(inp, cfg, storage_options, need_text, need_id):
        if need_text:
            texts.append(batch.column(cfg.text_field))
        if need_id:
            ids.extend(batch.column(cfg.id_field).to_pylist())
    rows = sum(len(t) for t in texts) if need_text else len(ids)
    for row, v in enumerate(ids):  # before the sizes, which encode the ids as keys
        if v is None:
            raise DecodeError(f"row {row}: record has no '{cfg.id_field}' (set --id-field)",
                              url=inp.url, key=f"row {row}", field=cfg.id_field)
        check_id(inp.url, f"row {row}", str(v), cfg.id_field)
    keep = sizes = hashes = None
    if need_text:
        col = pa.chunked_array(texts, type=texts[0].type if texts else pa.string())
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise DecodeError(f"column '{cfg.text_field}' is {col.type}, not text (--text-field)",
                              url=inp.url, key="schema", field=cfg.text_field)
        if col.null_count:
            row = int(pc.index(pc.is_null(col), True).as_py())
            raise DecodeError(f"row {row}: record has no '{cfg.text_field}' (set --text-field)",
                              url=inp.url, key=f"row {row}", field=cfg.text_field)
        mask = pc.greater_equal(pc.utf8_length(col), cfg.min_chars).to_numpy(zero_copy_only=False)
        keep = None if mask.all() else np.flatnonzero(mask)
        if cfg.shard_size_mb is not None:
            nbytes = pc.binary_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
            sizes = _sizes(inp, cfg, nbytes, ids, keep)
    if need_id:
        kept_ids = ids if keep is None else [ids[i] for i in keep]
        hashes = np.fromiter((_id_hash(str(v)) for v in kept_ids), np.uint64, len(kept_ids))
    kept = rows if keep is None else len(keep)
    return FileScan(rows=rows, kept=kept, keep=keep, sizes=sizes, id_hashes=hashes)


def _sizes(inp, cfg, nbytes, ids, keep) -> np.ndarray:
    if cfg.id_field:
        keylen = np.fromiter((len(safe_key(str(v))) for v in ids), np.int64, len(ids))
    else:
        keylen = len(default_key(inp.stem, 0))
    sizes = tar_size(nbytes, keylen)
    return sizes if keep is None else sizes[keep]


def _count_rows(inp: InputFile, opts) -> int:
    with _open(inp, opts) as f:
        if inp.fmt == "parquet":
            return pq.ParquetFile(f).metadata.num_rows
        try:
            return pa.ipc.open_file(f).count_rows()
        except pa.ArrowInvalid:
            f.seek(0)
            return sum(b.num_rows for b in pa.ipc.open_stream(f))


def _table_batches(inp, cfg, opts, need_text, need_id):
    cols = ([cfg.text_field] if need_text else []) + ([cfg.id_field] if need_id else [])
    with _open(inp, opts) as f:
        if inp.fmt == "parquet":
            pf = pq.ParquetFile(f)
            missing = [c for c in cols if c not in pf.schema_arrow.names]
            if missing:
                raise DecodeError(f"no column(s) {missing}; has {pf.schema_arrow.names}",
                                  url=inp.url, key="schema", field=missing[0])
            yield from pf.iter_batches(columns=cols, batch_size=65536)
            return
        try:
            reader = pa.ipc.open_file(f)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            names = reader.schema.names
        except pa.ArrowInvalid:
            f.seek(0)
            reader = pa.ipc.open_stream(f)
            batches, names = iter(reader), reader.schema.names
        missing = [c for c in cols if c not in names]
        if missing:
            raise DecodeError(f"no column(s) {missing}; has {names}", url=inp.url, key="schema",
                              field=missing[0])
        for b in batches:
            yield b.select(cols)


def _scan_rows(inp: InputFile, cfg: ConvertConfig, opts) -> FileScan:
    """Conversations in a table: every row is checked (a native ``list<struct>`` column
    cannot be measured by Arrow compute as a string column is)."""
    keep, sizes, hashes, rows = [], [], [], 0
    keylen0 = len(default_key(inp.stem, 0))
    for row, where, rec in iter_rows(inp, cfg.columns, storage_options=opts):
        rows += 1
        doc_id, ext, text, nchars = cfg.sample_of(inp.url, where, rec)
        if nchars < cfg.min_chars:
            continue
        keep.append(row)
        if doc_id is not None:
            hashes.append(_id_hash(doc_id))
        keylen = len(safe_key(doc_id)) if doc_id is not None else keylen0
        sizes.append(int(tar_size(len(text.encode("utf-8")), keylen + len(ext) - 3)))
    return FileScan(
        rows=rows, kept=len(keep),
        keep=None if len(keep) == rows else np.asarray(keep, np.int64),
        sizes=np.asarray(sizes, np.int64) if cfg.shard_size_mb is not None else None,
        id_hashes=np.asarray(hashes, np.uint64) if cfg.id_field else None)


def _scan_jsonl(inp, cfg, opts, need_text, need_id) -> FileScan:
    keep, offsets, lines, sizes, hashes = [], [], [], [], []
    rows = 0
    offset = 0
    parse = need_text or need_id
    keylen0 = len(default_key(inp.stem, 0))
    with _open(inp, opts) as f:
        for line_no, raw in enumerate(iter_lines(f, max_bytes=int(cfg.max_record_mb * 1e6),
                                                 url=inp.url), 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            row, rows = rows, rows + 1
            if parse:
                where = f"line {line_no}"
                try:
                    rec = json.loads(raw)
                except ValueError as exc:
                    raise DecodeError(f"{where}: invalid JSON: {exc}", url=inp.url, key=where,
                                      field=cfg.text_field) from exc
                doc_id, ext, text, nchars = cfg.sample_of(inp.url, where, rec)
                if nchars < cfg.min_chars:
                    continue
                if need_id:
                    hashes.append(_id_hash(doc_id))
                if cfg.shard_size_mb is not None:
                    keylen = len(safe_key(doc_id)) if doc_id is not None else keylen0
                    sizes.append(int(tar_size(len(text.encode("utf-8")), keylen + len(ext) - 3)))
            keep.append(row)
            offsets.append(start)
            lines.append(line_no)
    return FileScan(
        rows=rows, kept=len(keep), keep=np.asarray(keep, np.int64),
        sizes=np.asarray(sizes, np.int64) if cfg.shard_size_mb is not None else None,
        id_hashes=np.asarray(hashes, np.uint64) if need_id else None,
        offsets=np.asarray(offsets, np.int64), lines=np.asarray(lines, np.int64))


# -- the plan ----------------------------------------------------------------------------------
def plan_id(cfg: ConvertConfig, inputs: list[InputFile]) -> str:
    blob = json.dumps({"v": PLAN_VERSION, "config": cfg.as_dict(),
                       "inputs": [asdict(i) for i in inputs]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class Plan:
    plan_id: str
    config: ConvertConfig
    inputs: list[InputFile]
    rows: list[int]          # per input: records, and records kept by --min-chars
    kept: list[int]
    shards: list[dict] = field(default_factory=list)  # {"name", "samples", "slices"}

    @property
    def total_samples(self) -> int:
        return sum(self.kept)

    def to_dict_config(self) -> dict:
        return self.config.as_dict()

    def to_json(self) -> bytes:
        return json.dumps({"v": PLAN_VERSION, "plan_id": self.plan_id,
                           "config": self.config.as_dict(),
                           "inputs": [asdict(i) for i in self.inputs], "rows": self.rows,
                           "kept": self.kept, "shards": self.shards},
                          sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Plan:
        d = json.loads(data)
        if d.get("v") != PLAN_VERSION:
            raise SourceError(f"plan version {d.get('v')} is not {PLAN_VERSION}")
        return cls(d["plan_id"], ConvertConfig(**d["config"]), [InputFile(**i) for i in d["inputs"]],
                   d["rows"], d["kept"], d["shards"])


def _check_keys(inputs: list[InputFile], scans: list[FileScan], cfg: ConvertConfig, opts) -> None:
    if cfg.id_field is None:
        by_stem: dict[str, str] = {}
        for inp in inputs:
            if inp.stem in by_stem:
                raise ConfigError(f"inputs {by_stem[inp.stem]} and {inp.url} have the same stem "
                                  f"{inp.stem!r}, so their default keys collide; pass --id-field")
            by_stem[inp.stem] = inp.url
        return
    hashes = np.concatenate([s.id_hashes for s in scans]) if scans else np.zeros(0, np.uint64)
    if len(np.unique(hashes)) == len(hashes):
        return
    order = np.argsort(hashes, kind="stable")
    dup = int(np.flatnonzero(hashes[order][1:] == hashes[order][:-1])[0])
    starts = np.cumsum([0] + [s.kept for s in scans])
    places = []
    for pos in (order[dup], order[dup + 1]):
        f = int(np.searchsorted(starts, pos, side="right") - 1)
        local, scan = int(pos - starts[f]), scans[f]
        row = int(scan.keep[local]) if scan.keep is not None else local
        where = f"line {int(scan.lines[local])}" if scan.lines is not None else f"row {row}"
        places.append((inputs[f], row, where))
    inp, row, _ = places[0]
    doc_id = next((rec.get(cfg.id_field) if isinstance(rec, dict) else None
                   for _, _, rec in iter_rows(inp, cfg.columns, row, row + 1, opts)), None)
    raise DecodeError(f"duplicate document id {doc_id!r} at {places[0][0].url} {places[0][2]} "
                      f"and {places[1][0].url} {places[1][2]}", url=inp.url, key=str(doc_id),
                      field=cfg.id_field)


def _cuts(scans: list[FileScan], cfg: ConvertConfig) -> list[int]:
    """Shard boundaries as positions in the global kept-row order: [0, b1, ..., total]."""
    total = sum(s.kept for s in scans)
    if cfg.per_shard is not None:
        return list(range(0, total, cfg.per_shard)) + [total]
    cum = np.cumsum(np.concatenate([s.sizes for s in scans]) if scans else np.zeros(0, np.int64))
    target = int(cfg.shard_size_mb * 1_000_000)
    cuts, start = [0], 0
    while start < total:
        base = int(cum[start - 1]) if start else 0
        end = min(int(np.searchsorted(cum, base + target, side="left")) + 1, total)
        cuts.append(end)
        start = end
    return cuts


def make_plan(inputs: list[InputFile], scans: list[FileScan], cfg: ConvertConfig,
              storage_options: dict[str, Any] | None = None) -> Plan:
    _check_keys(inputs, scans, cfg, storage_options or {})
    starts = np.cumsum([0] + [s.kept for s in scans])
    cuts = _cuts(scans, cfg)
    shards = []
    for k, (p0, p1) in enumerate(zip(cuts[:-1], cuts[1:])):
        slices = []
        f = int(np.searchsorted(starts, p0, side="right") - 1)
        while f < len(scans) and starts[f] < p1:
            lo, hi = max(p0, starts[f]) - starts[f], min(p1, starts[f + 1]) - starts[f]
            if lo < hi:
                s = scans[f]
                first = int(s.keep[lo]) if s.keep is not None else int(lo)
                last = int(s.keep[hi - 1]) if s.keep is not None else int(hi - 1)
                if s.offsets is not None:  # JSONL: where the slice starts in the file
                    slices.append([f, first, last + 1, int(s.offsets[lo]), int(s.lines[lo])])
                else:
                    slices.append([f, first, last + 1, None, None])
            f += 1
        shards.append({"name": shard_name(cfg.prefix, k), "samples": int(p1 - p0),
                       "slices": slices})
    return Plan(plan_id(cfg, inputs), cfg, inputs, [s.rows for s in scans],
                [s.kept for s in scans], shards)
