"""``read`` for ``source.format: arrow``: one lane's documents straight from Parquet / Arrow files.

The same contract as :class:`~xtok_stream.stages.read.DocumentReader` (tar shards), so shuffle,
pack and teacher stages run unchanged on top:

* **Partition unit = one file.** Lanes take files exactly as they take tar shards
  (:func:`~xtok_stream.lanes.lane_shards`), so planning needs only the URL list: no
  metadata read at construction or in the Loader. (Row groups as units would give finer lanes
  but need every file's footer before any lane knows its share.) Use at least ``num_lanes``
  files.
* **Cursor** ``{"epoch", "slot", "offset", "part", "part_chars", "skipped"}``
  (:class:`~xtok_stream.cursor.DocumentCursor`): the next document is row ``offset`` of the
  ``slot``-th file the lane reads in ``epoch``. Restoring reads the footer
  and the one row group (IPC: record batch) holding ``row``. ``part``/``part_chars`` locate the
  next window of a huge document (``on_bad_data.huge_document: split``), ``skipped`` counts bad
  rows dropped under ``skip`` policies.
* **Document**: ``key = {file stem}-{row:08d}`` (what ``xtok convert`` writes for the same file
  without ``--id-field``), ``shard`` = the file URL, ``offset`` = the row, so
  ``position == [epoch, slot, row]`` and :meth:`fetch` re-reads one row group.
* **Validation split** (``source.val_split``, ``source.split``): row ``r`` of a file with stem
  ``s`` is held out iff ``splitmix64(splitmix64(seed ^ h(s)) ^ r) / 2**64 < val_split``
  (``h`` = 64-bit BLAKE2b of the stem). It depends only on (seed, file name, row): the same for
  every lane count, topology and store, and needs no global shuffle. Rows of the other part are
  passed over without being counted anywhere.

Worked example, two files of 3 rows, ``num_lanes=1``, no shuffle, ``val_split=0.3``::

    a.parquet: a-00000000 a-00000001* a-00000002      (* = hash < 0.3 -> validation)
    b.parquet: b-00000000 b-00000001 b-00000002*
    split=train      -> a-0 a-2 b-0 b-1    cursor after a-2: {epoch 0, slot 1, offset 0}
    split=validation -> a-1 b-2
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..cursor import DocumentCursor
from ..errors import ConfigError, DecodeError, StateError
from ..io.arrow import TableFile, open_table
from ..io.records_in import _stem, default_key
from ..io.shards import safe_key
from ..lanes import splitmix64
from ..records import Document
from .read import LaneReader, _cut, _Skip

_M64 = (1 << 64) - 1


def stem_hash(stem: str) -> int:
    return int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little")


def _splitmix64_np(x: np.ndarray) -> np.ndarray:
    """:func:`~xtok_stream.lanes.splitmix64` on a uint64 array (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def validation_mask(seed: int, stem: str, start: int, stop: int, val_split: float) -> np.ndarray:
    """True for the rows ``[start, stop)`` of file ``stem`` held out for validation."""
    if val_split <= 0:
        return np.zeros(stop - start, dtype=bool)
    base = np.uint64(splitmix64((seed & _M64) ^ stem_hash(stem)))
    with np.errstate(over="ignore"):
        h = _splitmix64_np(base ^ np.arange(start, stop, dtype=np.uint64))
    return h < np.uint64(min(int(val_split * 2.0 ** 64), _M64))


def in_validation(seed: int, stem: str, row: int, val_split: float) -> bool:
    """Scalar form of :func:`validation_mask` (the definition, for users and tests)."""
    h = splitmix64(splitmix64((seed & _M64) ^ stem_hash(stem)) ^ row)
    return h / 2.0 ** 64 < val_split


class ArrowDocumentReader(LaneReader):
    """Iterates the documents of one lane from Parquet / Arrow files. Construction does no I/O."""

    KIND, VERSION = "read_arrow", 2  # v2: the row is the cursor's "offset" (ShardCursor)

    def __init__(self, files: Sequence[str], *, text_field: str = "text",
                 val_split: float = 0.0, split: str = "train",
                 native: Callable[..., Any] | None = None, **kwargs: Any):
        if split not in ("train", "validation"):
            raise ConfigError(f"source.split must be train or validation, got {split!r}")
        if split == "validation" and val_split <= 0:
            raise ConfigError("source.split: validation needs source.val_split > 0")
        super().__init__(files, text_field=text_field, **kwargs)
        self.val_split, self.split = float(val_split), split
        # chat mode: a list<struct> column holds the conversations; ``native(value, url=, key=,
        # field=)`` turns one into its JSON text (chat.messages.native_text, given by the pipeline)
        self.native = native
        self.messages = native is not None
        self._files: dict[str, TableFile] = {}  # at most 2 open: the current one, the last fetch
        self._units: dict[str, tuple[int, pa.Array, np.ndarray]] = {}  # url -> (unit, col, keep)
        self._encoded: tuple[str, bytes] | None = None  # (key, utf-8) of a document being split
        self._verify = False  # check the restored row at the first open

    # -- files and units ------------------------------------------------------------------------
    def _table(self, url: str) -> TableFile:
        if url not in self._files:
            while len(self._files) >= 2:
                old = next(iter(self._files))
                self._files.pop(old).close()
                self._units.pop(old, None)
            self._files[url] = open_table(url, self.storage_options, self.retry)
        return self._files[url]

    def _unit(self, tf: TableFile, row: int) -> tuple[int, pa.Array, np.ndarray]:
        """(first row, text column, keep mask) of the unit holding ``row``; cached per file."""
        unit = tf.unit_of(row)
        cached = self._units.get(tf.url)
        if cached is None or cached[0] != unit:
            col = tf.column(unit, self.text_field)
            held = validation_mask(self.seed, _stem(tf.url), tf.starts[unit],
                                   tf.starts[unit + 1], self.val_split)
            keep = held if self.split == "validation" else ~held
            self._units[tf.url] = cached = (unit, col, keep)
        return tf.starts[cached[0]], cached[1], cached[2]

    # -- decoding and policies ------------------------------------------------------------------
    def _check_column(self, tf: TableFile) -> None:
        if self.text_field not in tf.names:
            self._policy("missing_field", DecodeError(
                f"file has no column '{self.text_field}' (has: {', '.join(tf.names)}); set "
                "source.text_field, or source.on_bad_data.missing_field: skip to drop the file",
                url=tf.url, key="schema", field=self.text_field))
        typ = tf.schema.field(self.text_field).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)
                or pa.types.is_binary(typ) or pa.types.is_large_binary(typ)
                or (self.messages and (pa.types.is_list(typ) or pa.types.is_large_list(typ)))):
            what = "string, binary or a list of messages" if self.messages else "string or binary"
            raise DecodeError(f"column '{self.text_field}' has type {typ}, not {what} "
                              "(source.text_field; chat.messages_field)", url=tf.url,
                              key="schema", field=self.text_field)

    def _text(self, value: Any, key: str, row: int, url: str) -> str:
        if self.native is not None:
            value = self.native(value, url=url, key=key, field=self.text_field)
        if value is None:
            self._policy("missing_field", DecodeError(
                f"row {row}: '{self.text_field}' is null; source.on_bad_data.missing_field: skip "
                "drops such rows", url=url, key=key, field=self.text_field))
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._policy("invalid_utf8", DecodeError(
                    f"row {row}: invalid UTF-8 at byte {exc.start}; "
                    "source.on_bad_data.invalid_utf8: skip drops such rows",
                    url=url, key=key, field=self.text_field))
        if not value:
            self._policy("empty_document", DecodeError(
                f"row {row}: empty document; source.on_bad_data.empty_document: skip drops "
                "such rows", url=url, key=key, field=self.text_field))
        return value

    def _document(self, text: str, key: str, url: str) -> Document:
        limit = self.bad.max_document_bytes
        if self._part == 0 and (len(text) <= limit // 4 or len(text.encode()) <= limit):
            return Document(key, text, url, self._epoch, self._slot, row=self._offset)
        if self.bad.huge_document != "split":
            self._policy("huge_document", DecodeError(
                f"row {self._offset}: document of {len(text.encode()):,} bytes exceeds "
                f"source.on_bad_data.max_document_bytes={limit:,}; set "
                "on_bad_data.huge_document: split or skip", url=url, key=key,
                field=self.text_field))
        if self._encoded is None or self._encoded[0] != key:
            self._encoded = (key, text.encode())
        data, start = self._encoded[1], self._part
        if start and (start >= len(data) or len(data) <= limit or (data[start] & 0xC0) == 0x80):
            raise self._bad_part(url, key, len(data))
        window = data[start: start + limit]
        final = start + len(window) >= len(data)
        part = window[: _cut(window, final)].decode("utf-8")
        doc = Document(key, part, url, self._epoch, self._slot, row=self._offset,
                       char_base=self._part_chars, last_part=final)
        if final:
            self._part = self._part_chars = 0
            self._encoded = None
        else:
            self._part += len(part.encode())
            self._part_chars += len(part)
        return doc

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> ArrowDocumentReader:
        return self

    def __next__(self) -> Document:
        while (url := self._walk()) is not None:
            tf = self._table(url)
            try:
                self._check_column(tf)
            except _Skip as skip:
                self._skipped[skip.kind] += 1
                self._next_shard()
                continue
            if self._verify:
                self._verify = False
                if self._offset > tf.num_rows:
                    raise StateError(f"offset: row {self._offset} is past the end of {url} "
                                     f"({tf.num_rows} rows): the state does not belong to this data")
            if self._offset >= tf.num_rows:
                self._next_shard()
                continue
            start, col, keep = self._unit(tf, self._offset)
            i = self._offset - start
            if not keep[i]:  # the other split
                self._offset += 1
                continue
            key = safe_key(default_key(_stem(url), self._offset))
            try:
                doc = self._document(self._text(col[i].as_py(), key, self._offset, url), key, url)
            except _Skip as skip:
                self._skipped[skip.kind] += 1
                self._part = self._part_chars = 0
                self._offset += 1
                continue
            if not self._part:  # else more windows of this row follow
                self._offset += 1
            return doc
        raise StopIteration

    def fetch(self, position: Sequence[int]) -> Document:
        """Re-read the document at ``[epoch, slot, row]`` (the one row group holding it)."""
        epoch, slot, row = self.check_position(position)
        url = self.url_at(epoch, slot)
        tf = self._table(url)
        self._check_column(tf)
        if row >= tf.num_rows:
            raise StateError(f"row {row} is past the end of {url} ({tf.num_rows} rows)")
        start, col, _ = self._unit(tf, row)
        key = safe_key(default_key(_stem(url), row))
        return Document(key, self._text(col[row - start].as_py(), key, row, url), url, epoch,
                        slot, row=row)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return DocumentCursor(self._epoch, self._slot, self._offset, self._part, self._part_chars,
                              dict(self._skipped)).to_dict(self.KIND, self.VERSION)

    def load_state_dict(self, state: Mapping) -> None:
        c = self._load_cursor(state)
        self._seek(c.epoch, c.slot, c.offset)
        self._part, self._part_chars, self._skipped = c.part, c.part_chars, dict(c.skipped)
        self._encoded = None
        self._verify = c.offset > 0

    def close(self) -> None:
        for tf in self._files.values():
            tf.close()
        self._files.clear()
        self._units.clear()
        self._encoded = None

