"""``read``: one lane's documents, shard after shard, epoch after epoch.

Cursor: ``{"epoch", "slot", "offset", "part", "part_chars", "skipped"}`` = the next document is
the sample whose first tar header is at byte ``offset`` of the ``slot``-th shard the lane reads in
``epoch``. Restoring opens that shard with a range request at that byte: resume cost does not grow
with the position in the epoch. ``part``/``part_chars`` locate the next window of a huge document
read in parts (``on_bad_data.huge_document: split``); ``skipped`` counts bad data dropped under a
``skip`` policy (see :class:`~xtok_stream.config.BadDataConfig`).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..config import BadDataConfig, RetryConfig
from ..dist.lanes import lane_shards
from ..errors import DecodeError, SourceError, StateError
from ..io.retry import RetryPolicy, open_resilient
from ..io.tar import CorruptShardError, Oversized, TarSample, iter_samples, read_sample_at
from ..records import Document
from ..state import check_envelope, envelope

SKIP_KINDS = ("corrupt_shard", "missing_field", "invalid_utf8", "empty_document", "huge_document",
              "odd_member")


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


class LaneReader:
    """What the tar and Arrow readers share: the lane's file plan per epoch (which shards, in
    which order), the bad-data policies and the retry policy. Construction does no I/O."""

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

    def _plan(self, epoch: int) -> list[int]:
        if epoch not in self._plans:
            self._plans = {  # keep one epoch's plan: the cache stays O(shards / lanes)
                epoch: lane_shards(len(self.shards), self.num_lanes, self.lane, self.seed,
                                   epoch, self.shuffle_shards)
            }
        return self._plans[epoch]

    def url_at(self, epoch: int, slot: int) -> str:
        return self.shards[self._plan(epoch)[slot]]

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


class DocumentReader(LaneReader):
    """Iterates the documents of one lane from tar shards. Construction does no I/O."""

    KIND, VERSION = "read", 2

    def __init__(self, shards: Sequence[str], **kwargs: Any):
        super().__init__(shards, **kwargs)
        self._epoch = self._slot = self._offset = 0
        self._part = self._part_chars = 0
        self._it: Iterator[TarSample] | None = None

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
        if self._part:  # only a huge document read in windows has parts; else it would repeat
            raise StateError(
                f"read state field 'part'={self._part}: the sample at byte {sample.offset} of "
                f"{url} ({sample.key}) is not a huge document read in windows "
                "(source.on_bad_data.max_document_bytes); the state does not fit this shard")
        return Document(sample.key, self._decode(raw, sample.key, sample.offset, url), url,
                        sample.offset, self._epoch, self._slot)

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
        if start == 0:
            self._validate_member(sample, raw, url)
        window = self._read_window(url, raw, start)
        final = start + len(window) >= raw.size
        window = window[: _cut(window, final)]
        text = self._decode(window, sample.key, sample.offset, url)
        doc = Document(sample.key, text, url, sample.offset, self._epoch, self._slot,
                       char_base=self._part_chars, last_part=final)
        if final:
            self._part = self._part_chars = 0
        else:
            self._part, self._part_chars = start + len(window), self._part_chars + len(text)
        return doc

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> DocumentReader:
        return self

    def _next_sample(self) -> TarSample:
        while True:
            if self._it is None:
                if self.epochs is not None and self._epoch >= self.epochs:
                    raise StopIteration
                if self._slot >= len(self._plan(self._epoch)):
                    self._epoch, self._slot, self._offset = self._epoch + 1, 0, 0
                    continue
                url = self.url_at(self._epoch, self._slot)
                self._it = iter_samples(url, self.storage_options, self._offset, retry=self.retry,
                                        max_member_bytes=self.bad.max_document_bytes,
                                        odd_member=self._odd_member)
            try:
                return next(self._it)
            except StopIteration:  # the end of the shard (or an empty one)
                self._next_shard()
            except CorruptShardError:
                if self.bad.corrupt_shard != "skip":
                    self._close_it()  # the cursor stays at the corrupt point: not consumed
                    raise
                self._next_shard()
                self._skipped["corrupt_shard"] += 1
            except SourceError:  # the generator is dead: a retry must reopen at the cursor,
                self._close_it()  # not take its StopIteration for the end of the shard
                raise

    def _next_shard(self) -> None:
        self._close_it()
        self._slot, self._offset, self._part, self._part_chars = self._slot + 1, 0, 0, 0

    def __next__(self) -> Document:
        # A lane gets a shard in some epoch iff there are more shards than its index.
        if len(self.shards) <= self.lane:
            raise StopIteration
        while True:
            sample = self._next_sample()
            url = self.url_at(self._epoch, self._slot)
            try:
                doc = self._document(sample, url)
            except CorruptShardError:  # a huge member cut short: the shard is truncated
                self._part = self._part_chars = 0
                if self.bad.corrupt_shard != "skip":
                    self._close_it()
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
                self._close_it()
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
        epoch, slot, offset = (int(x) for x in position)
        url = self.url_at(epoch, slot)
        # its odd members were dealt with (and counted) when it was first read
        sample = read_sample_at(url, self.storage_options, offset, retry=self.retry,
                                odd_member=lambda error: None)
        raw = self._raw_text(sample, url)
        return Document(sample.key, self._decode(raw, sample.key, offset, url), url, offset,
                        epoch, slot)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return envelope(
            self.KIND, self.VERSION, epoch=self._epoch, slot=self._slot, offset=self._offset,
            part=self._part, part_chars=self._part_chars, skipped=dict(self._skipped),
        )

    def load_state_dict(self, state: Mapping) -> None:
        check_envelope(state, self.KIND, self.VERSION,
                       ("epoch", "slot", "offset", "part", "part_chars", "skipped"))
        self._close_it()
        self._epoch, self._slot, self._offset = (
            int(state["epoch"]), int(state["slot"]), int(state["offset"]))
        self._part, self._part_chars = int(state["part"]), int(state["part_chars"])
        self._skipped = {k: int(state["skipped"].get(k, 0)) for k in SKIP_KINDS}

    def _close_it(self) -> None:
        if self._it is not None:
            self._it.close()  # closes the file handle held by the generator
            self._it = None

    def close(self) -> None:
        self._close_it()
