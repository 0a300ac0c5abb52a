"""``read``: one lane's documents, shard after shard, epoch after epoch.

Cursor (:class:`~xtok_stream.cursor.DocumentCursor`, checked on load):
``{"epoch", "slot", "offset", "part", "part_chars", "skipped"}`` = the next document is
the sample whose first tar header is at byte ``offset`` of the ``slot``-th shard the lane reads in
``epoch``. Restoring opens that shard with a range request at that byte: resume cost does not grow
with the position in the epoch. ``part``/``part_chars`` locate the next window of a huge document
read in parts (``on_bad_data.huge_document: split``); ``skipped`` counts bad data dropped under a
``skip`` policy (see :class:`~xtok_stream.config.BadDataConfig`).
"""

from __future__ import annotations

import codecs
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..config import BadDataConfig, RetryConfig
from ..cursor import SKIP_KINDS, DocumentCursor
from ..errors import DecodeError, StateError
from ..io.retry import RetryPolicy, open_resilient
from ..io.tar import CorruptShardError, Oversized, TarSample, iter_samples, read_sample_at
from ..lanes import lane_shards
from ..records import Document
from .walk import ShardWalk, TarWalk

__all__ = ["SKIP_KINDS", "DocumentReader", "LaneReader"]


class _Skip(Exception):
    """A bad sample dropped under a ``skip`` policy."""

    def __init__(self, kind: str):
        self.kind = kind


def _cut(window: bytes, final: bool) -> int:
    """Where to end a window of a huge document: the whole rest if final, else after the last
    newline, else the last space, else at the last UTF-8 character boundary."""
    if final:
        return len(window)
    for sep in (b"\n", b" "):
        i = window.rfind(sep)
        if i > 0:
            return i + 1
    i = len(window)
    while i > 0 and (window[i - 1] & 0xC0) == 0x80:  # back over continuation bytes
        i -= 1
    return i - 1 if i > 0 and window[i - 1] >= 0xC0 else len(window)


def _not_corrupt(samples: Iterator[TarSample], url: str, offset: int) -> Iterator[TarSample]:
    """Buffered positions were whole samples when read: corrupt bytes there mean the state is
    not this data's."""
    try:
        yield from samples
    except CorruptShardError as exc:
        raise StateError(f"buffer: no sample at byte {offset} of {url} ({exc}): the state does "
                         "not belong to this data") from exc


class LaneReader(ShardWalk):
    """What the tar and Arrow readers share: the lane's file plan per epoch (which shards, in
    which order; the walk over them is :class:`~xtok_stream.stages.walk.ShardWalk`), the
    bad-data policies and the retry policy. Construction does no I/O."""

    def __init__(
        self,
        shards: Sequence[str],
        *,
        lane: int,
        num_lanes: int,
        seed: int,
        epochs: int | None,
        shuffle_shards: bool = True,
        text_field: str = "txt",
        storage_options: Mapping[str, Any] | None = None,
        bad_data: BadDataConfig | None = None,
        retry: RetryConfig | None = None,
    ):
        self.shards = list(shards)
        self.lane, self.num_lanes, self.seed = lane, num_lanes, seed
        self.epochs, self.shuffle_shards = epochs, shuffle_shards
        self.text_field = text_field
        self.storage_options = dict(storage_options or {})
        self.bad = bad_data or BadDataConfig()
        r = retry or RetryConfig()
        self.retry = RetryPolicy(r.max_attempts, r.base_delay, r.max_delay,
                                 read_timeout=r.read_timeout)
        self._plans: dict[int, list[int]] = {}
        self._skipped = dict.fromkeys(SKIP_KINDS, 0)
        self._part = self._part_chars = 0  # the next window of a huge document (split)

    def _plan(self, epoch: int) -> list[int]:
        if epoch not in self._plans:
            self._plans = {  # keep one epoch's plan: the cache stays O(shards / lanes)
                epoch: lane_shards(len(self.shards), self.num_lanes, self.lane, self.seed,
                                   epoch, self.shuffle_shards)
            }
        return self._plans[epoch]

    def _slots(self, epoch: int) -> int:
        return len(self._plan(epoch))

    def url_at(self, epoch: int, slot: int) -> str:
        return self.shards[self._plan(epoch)[slot]]

    def _next_shard(self) -> None:
        super()._next_shard()
        self._part = self._part_chars = 0

    def _policy(self, kind: str, error: Exception) -> None:
        """Raise ``error`` under ``error``, or a skip marker under ``skip``."""
        if getattr(self.bad, kind) == "skip":
            raise _Skip(kind) from error
        raise error

    def _odd_member(self, error: Exception) -> None:
        """A link, extension-less or duplicate tar member: raise, or count it and drop it.
        (Counted while the tar is read ahead of the sample handed out; the cursor after that
        sample is past the member too, so count and cursor agree.)"""
        if self.bad.odd_member != "skip":
            raise error
        self._skipped["odd_member"] += 1

    @property
    def skipped(self) -> dict[str, int]:
        return dict(self._skipped)

    def fetch(self, position: Sequence[int]) -> Document:
        raise NotImplementedError

    def fetch_many(self, positions: Sequence[Sequence[int]]) -> list[Document]:
        """The documents at ``positions`` (in that order), read in position order so one
        shard's re-reads come together (the Arrow reader caches the unit they share)."""
        out: list[Document | None] = [None] * len(positions)
        for i in sorted(range(len(positions)), key=lambda i: list(positions[i])):
            out[i] = self.fetch(positions[i])
        return out  # type: ignore[return-value]

    def _load_cursor(self, state: Mapping, align: int = 1) -> DocumentCursor:
        """The checked cursor of ``state`` (see :mod:`xtok_stream.cursor`)."""
        c = DocumentCursor.from_dict(state, self.KIND, self.VERSION, epochs=self.epochs,
                                     slots=lambda e: len(self._plan(e)), offset_align=align)
        if c.part and self.bad.huge_document != "split":
            raise StateError(f"part: the cursor is inside a huge document read in windows (byte "
                             f"{c.part}); keep source.on_bad_data.huge_document: split to finish "
                             f"it (now {self.bad.huge_document!r})")
        return c

    def check_position(self, position: Any) -> tuple[int, int, int]:
        """A re-fetch position ``[epoch, slot, offset]`` (shuffle buffers), checked."""
        if not (isinstance(position, list) and len(position) == 3
                and all(type(x) is int for x in position)):
            raise StateError(f"must be [epoch, slot, offset] integers, got {position!r}")
        epoch, slot, offset = position
        if epoch < 0 or (self.epochs is not None and epoch >= self.epochs):
            raise StateError(f"epoch {epoch} is out of range (epochs: {self.epochs})")
        n = len(self._plan(epoch))
        if not 0 <= slot < n or offset < 0:
            raise StateError(f"[{epoch}, {slot}, {offset}] is outside the lane's {n} shard(s) "
                             f"of epoch {epoch}")
        return epoch, slot, offset

    def _bad_part(self, url: str, key: str, size: int) -> StateError:
        return StateError(
            f"part: the cursor points at byte {self._part} of document '{key}' in {url}, which "
            f"is {size:,} bytes and not read in windows (source.on_bad_data.max_document_bytes="
            f"{self.bad.max_document_bytes:,}): the state does not belong to this data or "
            "config, and resuming it would repeat or drop text")


class DocumentReader(TarWalk, LaneReader):
    """Iterates the documents of one lane from tar shards. Construction does no I/O."""

    KIND, VERSION = "read", 2

    def __init__(self, shards: Sequence[str], **kwargs: Any):
        super().__init__(shards, **kwargs)
        self._verify = False  # check the restored offset at the first open (one small read)

    # -- decoding and policies ------------------------------------------------------------------
    def _raw_text(self, sample: TarSample, url: str) -> bytes | Oversized:
        raw = sample.files.get(self.text_field)
        if raw is None:
            have = ", ".join(sorted(sample.files)) or "none"
            self._policy("missing_field", DecodeError(
                f"sample at byte {sample.offset} has no '{self.text_field}' member (has: {have});"
                " set source.text_field or source.on_bad_data.missing_field: skip",
                url=url, key=sample.key, field=self.text_field))
        return raw

    def _decode(self, raw: bytes, sample_key: str, offset: int, url: str) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._policy("invalid_utf8", DecodeError(
                f"invalid UTF-8 at byte {exc.start} of the member (sample at byte {offset}); "
                "source.on_bad_data.invalid_utf8: skip drops such documents",
                url=url, key=sample_key, field=self.text_field))
        if not text and self._part == 0:
            self._policy("empty_document", DecodeError(
                f"empty document (sample at byte {offset}); "
                "source.on_bad_data.empty_document: skip drops such documents",
                url=url, key=sample_key, field=self.text_field))
        return text

    def _document(self, sample: TarSample, url: str) -> Document:
        raw = self._raw_text(sample, url)
        if isinstance(raw, Oversized):
            if self.bad.huge_document != "split":
                self._policy("huge_document", DecodeError(
                    f"document of {raw.size:,} bytes (sample at byte {sample.offset}) exceeds "
                    f"source.on_bad_data.max_document_bytes={self.bad.max_document_bytes:,}; "
                    "set on_bad_data.huge_document: split or skip",
                    url=url, key=sample.key, field=self.text_field))
            return self._window(sample, raw, url)
        if self._part:  # only a window of a huge member can be "in the middle"
            raise self._bad_part(url, sample.key, len(raw))
        return Document(sample.key, self._decode(raw, sample.key, sample.offset, url), url,
                        self._epoch, self._slot, byte_offset=sample.offset)

    def _read_window(self, url: str, raw: Oversized, start: int) -> bytes:
        want = min(self.bad.max_document_bytes, raw.size - start)
        with open_resilient(url, self.storage_options, raw.data_offset + start, self.retry) as f:
            window = f.read(want)
        if len(window) < want:
            raise CorruptShardError(
                f"truncated tar: member data ends at byte {raw.data_offset + start + len(window)}"
                f" of a {raw.size:,}-byte member", url=url, at=raw.data_offset)
        return window

    def _validate_member(self, sample: TarSample, raw: Oversized, url: str) -> None:
        """Before a huge document's first window goes out, check the whole member decodes (one
        extra pass, one window of memory): a skip policy must drop all of it or none."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        pos = 0
        while pos < raw.size:
            window = self._read_window(url, raw, pos)
            try:
                decoder.decode(window, final=pos + len(window) >= raw.size)
            except UnicodeDecodeError as exc:
                self._policy("invalid_utf8", DecodeError(
                    f"invalid UTF-8 at byte {pos + exc.start} of the member (sample at byte "
                    f"{sample.offset}); source.on_bad_data.invalid_utf8: skip drops such documents",
                    url=url, key=sample.key, field=self.text_field))
            pos += len(window)

    def _window(self, sample: TarSample, raw: Oversized, url: str) -> Document:
        """The next window of a huge document (bounded memory: one window at a time)."""
        start = self._part
        if start >= raw.size:
            raise self._bad_part(url, sample.key, raw.size)
        if start == 0:
            self._validate_member(sample, raw, url)
        window = self._read_window(url, raw, start)
        final = start + len(window) >= raw.size
        window = window[: _cut(window, final)]
        text = self._decode(window, sample.key, sample.offset, url)
        doc = Document(sample.key, text, url, self._epoch, self._slot, byte_offset=sample.offset,
                       char_base=self._part_chars, last_part=final)
        if final:
            self._part = self._part_chars = 0
        else:
            self._part, self._part_chars = start + len(window), self._part_chars + len(text)
        return doc

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> DocumentReader:
        return self

    def _open_samples(self, url: str) -> Iterator[TarSample]:
        if self._verify:
            self._verify_offset(url)
        return iter_samples(url, self.storage_options, self._offset, retry=self.retry,
                            max_member_bytes=self.bad.max_document_bytes,
                            odd_member=self._odd_member)

    def _on_corrupt(self, error: CorruptShardError) -> None:
        if self.bad.corrupt_shard != "skip":
            raise error  # the cursor stays at the corrupt point: nothing consumed
        self._skipped["corrupt_shard"] += 1

    def __next__(self) -> Document:
        while True:
            sample = self._next_sample()
            url = self.url_at(self._epoch, self._slot)
            try:
                doc = self._document(sample, url)
            except CorruptShardError:  # a huge member cut short: the shard is truncated
                self._part = self._part_chars = 0
                if self.bad.corrupt_shard != "skip":
                    self._close_unit()
                    self._offset = sample.offset
                    raise
                self._next_shard()
                self._skipped["corrupt_shard"] += 1
                continue
            except _Skip as skip:
                self._skipped[skip.kind] += 1
                self._part = self._part_chars = 0
                self._advance(sample)
                continue
            if self._part:  # more windows of this document follow: stay on the sample
                self._close_unit()
                self._offset = sample.offset
            else:
                self._advance(sample)
            return doc

    def _advance(self, sample: TarSample) -> None:
        if sample.next_offset is None:
            self._next_shard()
        else:
            self._offset = sample.next_offset

    def fetch(self, position: Sequence[int]) -> Document:
        """Re-read the document at ``[epoch, slot, offset]`` (one range request)."""
        epoch, slot, offset = self.check_position(position)
        url = self.url_at(epoch, slot)
        # its odd members were dealt with (and counted) when it was first read
        sample = read_sample_at(url, self.storage_options, offset, retry=self.retry,
                                odd_member=lambda error: None)
        raw = self._raw_text(sample, url)
        return Document(sample.key, self._decode(raw, sample.key, offset, url), url, epoch, slot,
                        byte_offset=offset)

    def fetch_many(self, positions: Sequence[Sequence[int]]) -> list[Document]:
        """Batched re-fetch (shuffle restore): one sequential read per shard, from the lowest
        wanted offset to the highest. A shuffle buffer was filled by reading in order, so its
        documents sit close together just before the cursor."""
        checked = [self.check_position(p) for p in positions]
        groups: dict[tuple[int, int], set[int]] = {}
        for epoch, slot, offset in checked:
            groups.setdefault((epoch, slot), set()).add(offset)
        found: dict[tuple[int, int, int], Document] = {}
        for (epoch, slot), offsets in groups.items():
            url, want, last = self.url_at(epoch, slot), set(offsets), max(offsets)
            it = iter_samples(url, self.storage_options, min(offsets), retry=self.retry,
                              max_member_bytes=self.bad.max_document_bytes)
            try:
                for sample in _not_corrupt(it, url, min(offsets)):
                    if sample.offset in want:
                        want.discard(sample.offset)
                        raw = self._raw_text(sample, url)
                        if isinstance(raw, Oversized):
                            raise StateError(f"buffer: [{epoch}, {slot}, {sample.offset}] is a "
                                             "huge document, which is never buffered")
                        found[(epoch, slot, sample.offset)] = Document(
                            sample.key, self._decode(raw, sample.key, sample.offset, url), url,
                            epoch, slot, byte_offset=sample.offset)
                    if not want or sample.offset >= last:
                        break
            finally:
                it.close()
            if want:
                raise StateError(f"buffer: no sample starts at byte(s) {sorted(want)[:5]} of "
                                 f"{url}: the state does not belong to this data")
        return [found[p] for p in checked]

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return DocumentCursor(self._epoch, self._slot, self._offset, self._part,
                              self._part_chars, dict(self._skipped)).to_dict(self.KIND, self.VERSION)

    def load_state_dict(self, state: Mapping) -> None:
        c = self._load_cursor(state, align=tarfile.BLOCKSIZE)
        self._seek(c.epoch, c.slot, c.offset)
        self._part, self._part_chars, self._skipped = c.part, c.part_chars, dict(c.skipped)
        self._verify = c.offset > 0

    def _verify_offset(self, url: str) -> None:
        """A restored offset must be a tar header inside the shard: else the reader would take
        the bytes there for a corrupt shard (or the end of it) and drop what follows. A header
        failing its checksum is left to the corrupt_shard policy: the shard may really be
        corrupt right there (a run stopped by it, resumed under ``skip``)."""
        self._verify = False
        with open_resilient(url, self.storage_options, self._offset, self.retry) as f:
            block = f.read(tarfile.BLOCKSIZE)
        if len(block) < tarfile.BLOCKSIZE:
            raise StateError(f"offset: byte {self._offset} is past the end of shard {url}: the "
                             "state does not belong to this data")
        try:
            tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.EOFHeaderError:
            return  # the end-of-archive marker: nothing left in this shard
        except tarfile.HeaderError as exc:
            if self.bad.corrupt_shard == "skip":
                return
            raise StateError(f"offset: byte {self._offset} of shard {url} is not a tar header "
                             f"({exc}): the state does not belong to this data (if the shard "
                             "is corrupt there, source.on_bad_data.corrupt_shard: skip drops "
                             "the rest of it)") from exc

    def close(self) -> None:
        self._close_unit()
