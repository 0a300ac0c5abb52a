"""``source.format: precomputed``: one lane's packed sequences, read back instead of computed.

Lane ``L`` reads the shards named ``lane{L:04d}-{k:06d}.tar`` among ``source.urls`` (any other
URL is ignored, so ``DIR/`` or ``DIR/lane*.tar`` both work), in ``k`` order, and yields exactly
the ``PackedSequence`` objects that ``read -> pack -> teacher 1..K`` yielded for lane ``L`` when
the shards were written - ids, pieces and every teacher's ``extras`` - so batching, collation and
the loader are unchanged and the batches are identical. ``texts`` stay empty (only teacher stages
read them).

Not applied here: the per-epoch shard shuffle and the document shuffle buffer (the sequences were
shuffled and packed when written). With ``epochs > 1`` every epoch replays the same sequences in
the same order, where the on-the-fly stream would reshuffle shards and repack.

Every sample's ``meta.json`` carries the fingerprint of the spec it was made for
(:mod:`.spec`); a sequence whose fingerprint differs from this pipeline's raises ConfigError
naming the differing fields.

Odd members (a symlink or hardlink, a name without an extension, a duplicate member) follow
``source.on_bad_data.odd_member`` as in the tar reader: an error naming the shard, member and
byte offset, or (``skip``) dropped and counted in the cursor's ``skipped``.

Cursor: ``{"epoch", "slot", "offset", "index", "skipped"}``
(:class:`~xtok_stream.cursor.SequenceCursor`) = the next sequence is the sample whose first tar
header is at byte ``offset`` of the lane's ``slot``-th shard, in ``epoch`` (one range request to
resume), and has index ``index`` in the lane (checked against the sample's own, so an edited or
foreign cursor is a StateError); ``skipped`` counts the odd members dropped so far.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..config import BadDataConfig, RetryConfig
from ..cursor import SequenceCursor
from ..errors import ConfigError, DecodeError, StateError, XtokError
from ..io.retry import RetryPolicy
from ..io.tar import CorruptShardError, TarSample, iter_samples, read_sample_at
from ..io.urls import lane_urls
from ..records import PackedSequence, Piece
from ..stages.walk import TarWalk
from .spec import check_spec, spec_fingerprint

_FIELDS = ("student_spans", "teacher_spans", "exact", "metrics")


def _array(raw: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)


class PrecomputedReader(TarWalk):
    """Iterates one lane's precomputed sequences. Construction does no I/O.

    ``spec`` returns the reading pipeline's spec (:func:`~xtok_stream.precompute.spec.pipeline_spec`
    of the config ``pipeline.py`` validated once); it is called at the first read, not here,
    because hashing the tokenizers reads their files."""

    KIND, VERSION = "precomputed", 3

    def __init__(
        self,
        shards: Sequence[str],
        *,
        lane: int,
        teachers: Sequence[str],
        spec: Callable[[], Mapping],
        epochs: int | None = 1,
        storage_options: Mapping[str, Any] | None = None,
        retry: RetryConfig | None = None,
        bad_data: BadDataConfig | None = None,
    ):
        self.lane, self.epochs = lane, epochs
        self.urls = lane_urls(shards, lane)
        self.teachers = list(teachers)
        self.storage_options = dict(storage_options or {})
        r = retry or RetryConfig()
        self.retry = RetryPolicy(r.max_attempts, r.base_delay, r.max_delay,
                                 read_timeout=r.read_timeout)
        self.skip_odd = (bad_data or BadDataConfig()).odd_member == "skip"
        self._skipped = 0
        self._spec_of = spec
        self._spec: Mapping | None = None
        self._fp: str | None = None
        self._index = 0  # the next sequence's index in the lane: shards must be contiguous
        self._restored = False  # check the first sample against the restored cursor

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> PrecomputedReader:
        return self

    def _slots(self, epoch: int) -> int:
        return len(self.urls)

    def url_at(self, epoch: int, slot: int) -> str:
        return self.urls[slot]

    def _new_epoch(self) -> None:
        self._index = 0  # every epoch replays the lane from its first sequence

    def _open_samples(self, url: str) -> Iterator[TarSample]:
        return iter_samples(url, self.storage_options, self._offset, retry=self.retry,
                            odd_member=self._odd_member)

    def _on_corrupt(self, error: CorruptShardError) -> None:
        if self._restored:  # the first read after a restore: the cursor is bad
            raise StateError(f"offset: byte {self._offset} of {self.urls[self._slot]} is not a "
                             f"sample ({error}): the state does not belong to these shards"
                             ) from error
        raise error

    def _odd_member(self, error: Exception) -> None:
        """Raise, or count and drop (counted while reading ahead of the sample handed out; the
        cursor after that sample is past the member too, so count and cursor agree)."""
        if not self.skip_odd:
            raise error
        self._skipped += 1

    def __next__(self) -> PackedSequence:
        if self._fp is None:
            self._spec = self._spec_of()
            self._fp = spec_fingerprint(self._spec)
        sample = self._next_sample()
        url = self.urls[self._slot]
        seq = self._decode(sample, url)
        if self._restored:
            self._restored = False
            if self._seen_index != self._index:
                raise StateError(f"index: the cursor says sequence {self._index} but the sample "
                                 f"at byte {sample.offset} of {url} is sequence "
                                 f"{self._seen_index}: the state does not belong to these shards")
        if self._seen_index != self._index:  # a stale shard from an older run, or a gap
            raise ConfigError(
                f"precomputed lane {self.lane}: sequence {self._seen_index} where {self._index} "
                f"was expected; the folder mixes runs or lost a shard: re-run "
                "`xtok convert --precompute` into an empty --out", )
        self._index += 1
        if sample.next_offset is None:
            self._next_shard()
        else:
            self._offset = sample.next_offset
        return seq

    def _member(self, sample: TarSample, field: str, url: str) -> bytes:
        raw = sample.files.get(field)
        if raw is None:
            have = ", ".join(sorted(sample.files)) or "none"
            raise DecodeError(f"precomputed sample has no '{field}' member (has: {have}); was it "
                              "written by `xtok convert --precompute` with these teachers?",
                              url=url, key=sample.key, field=field)
        return raw

    def _decode(self, sample: TarSample, url: str) -> PackedSequence:
        try:
            return self._decode_members(sample, url)
        except XtokError:
            raise
        except (ValueError, KeyError, TypeError) as exc:  # bad JSON / npy / missing key
            raise DecodeError(f"unreadable precomputed sample: {type(exc).__name__}: {exc}",
                              url=url, key=sample.key, field="meta.json|pieces.json|*.npy"
                              ) from exc

    def _decode_members(self, sample: TarSample, url: str) -> PackedSequence:
        meta = json.loads(self._member(sample, "meta.json", url))
        if meta.get("fingerprint") != self._fp:
            self._mismatch(url, meta)
        self._seen_index = int(meta.get("index", -1))
        ids = _array(self._member(sample, "input_ids.npy", url)).astype(np.int64)
        length = int(meta["length"])
        pieces = [Piece(k, cs, ce, ts, te, bool(end), bool(start))
                  for k, cs, ce, ts, te, end, start
                  in json.loads(self._member(sample, "pieces.json", url))]
        seq = PackedSequence(ids, length, pieces, [])
        for name in self.teachers:
            view = {"input_ids": _array(self._member(sample, f"{name}.input_ids.npy", url))
                    .astype(np.int64)}
            for field in _FIELDS:
                view[field] = _array(self._member(sample, f"{name}.{field}.npy", url))
            for field in ("student_spans", "teacher_spans"):  # stored narrow (convert/precompute.py)
                view[field] = view[field].astype(np.int32)
            view["n_student"] = length
            seq.extras[name] = {k: view[k] for k in ("input_ids", "student_spans",
                                                     "teacher_spans", "exact", "n_student",
                                                     "metrics")}
        return seq

    def _mismatch(self, url: str, meta: Mapping) -> None:
        """Name the differing fields: the shard's first sample carries the whole spec."""
        saved = meta.get("spec")
        if saved is None:
            first = read_sample_at(url, self.storage_options, 0, retry=self.retry,
                                   odd_member=lambda error: None)
            saved = json.loads(first.files.get("meta.json", b"{}")).get("spec")
        if saved is None:
            raise ConfigError(f"precomputed shard {url} has fingerprint {meta.get('fingerprint')!r}"
                              f" != this pipeline's {self._fp!r} and no spec to compare")
        check_spec(saved, self._spec, url=url)
        raise ConfigError(f"precomputed shard {url}: fingerprint differs but the spec matches "
                          "(written by another version?); re-run `xtok convert --precompute`")

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return SequenceCursor(self._epoch, self._slot, self._offset, self._index,
                              {"odd_member": self._skipped}).to_dict(self.KIND, self.VERSION)

    def load_state_dict(self, state: Mapping) -> None:
        c = SequenceCursor.from_dict(state, self.KIND, self.VERSION, epochs=self.epochs,
                                     slots=lambda e: len(self.urls),
                                     offset_align=tarfile.BLOCKSIZE)
        self._seek(c.epoch, c.slot, c.offset)
        self._index = c.index
        self._skipped = c.skipped["odd_member"]
        self._restored = c.offset > 0 or c.index > 0

    @property
    def skipped(self) -> dict[str, int]:
        return {"odd_member": self._skipped}

    def close(self) -> None:
        self._close_unit()

