"""``read``: one lane's documents, shard after shard, epoch after epoch.

Cursor: ``{"epoch", "slot", "offset"}`` = the next document is the sample whose first tar header
is at byte ``offset`` of the ``slot``-th shard the lane reads in ``epoch``. Restoring opens that
shard with a range request at that byte: resume cost does not grow with the position in the
epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..dist.lanes import lane_shards
from ..errors import DecodeError
from ..io.tar import TarSample, iter_samples, read_sample_at
from ..records import Document
from ..state import check_envelope, envelope


def decode_text(sample: TarSample, url: str, field: str) -> str:
    """The sample's text field as str; a clear error names shard, key and field."""
    raw = sample.files.get(field)
    if raw is None:
        have = ", ".join(sorted(sample.files)) or "none"
        raise DecodeError(
            f"sample has no '{field}' member (has: {have}); set source.text_field",
            url=url, key=sample.key, field=field,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"invalid UTF-8 at byte {exc.start} of the member", url=url, key=sample.key, field=field
        ) from exc


class DocumentReader:
    """Iterates the documents of one lane. Construction does no I/O."""

    KIND, VERSION = "read", 1

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
    ):
        self.shards = list(shards)
        self.lane, self.num_lanes, self.seed = lane, num_lanes, seed
        self.epochs, self.shuffle_shards = epochs, shuffle_shards
        self.text_field = text_field
        self.storage_options = dict(storage_options or {})
        self._plans: dict[int, list[int]] = {}
        self._epoch = self._slot = self._offset = 0
        self._it: Iterator[TarSample] | None = None

    def _plan(self, epoch: int) -> list[int]:
        if epoch not in self._plans:
            self._plans = {  # keep one epoch's plan: the cache stays O(shards / lanes)
                epoch: lane_shards(
                    len(self.shards), self.num_lanes, self.lane, self.seed, epoch,
                    self.shuffle_shards,
                )
            }
        return self._plans[epoch]

    def url_at(self, epoch: int, slot: int) -> str:
        return self.shards[self._plan(epoch)[slot]]

    def __iter__(self) -> DocumentReader:
        return self

    def __next__(self) -> Document:
        # A lane gets a shard in some epoch iff there are more shards than its index.
        if len(self.shards) <= self.lane:
            raise StopIteration
        while True:
            if self._it is None:
                if self.epochs is not None and self._epoch >= self.epochs:
                    raise StopIteration
                if self._slot >= len(self._plan(self._epoch)):
                    self._epoch, self._slot, self._offset = self._epoch + 1, 0, 0
                    continue
                url = self.url_at(self._epoch, self._slot)
                self._it = iter_samples(url, self.storage_options, self._offset)
            try:
                sample = next(self._it)
            except StopIteration:  # an empty shard (or nothing after the offset)
                self._it, self._slot, self._offset = None, self._slot + 1, 0
                continue
            url = self.url_at(self._epoch, self._slot)
            doc = Document(
                sample.key, decode_text(sample, url, self.text_field), url, sample.offset,
                self._epoch, self._slot,
            )
            if sample.next_offset is None:
                self._close_it()
                self._slot, self._offset = self._slot + 1, 0
            else:
                self._offset = sample.next_offset
            return doc

    def fetch(self, position: Sequence[int]) -> Document:
        """Re-read the document at ``[epoch, slot, offset]`` (one range request)."""
        epoch, slot, offset = (int(x) for x in position)
        url = self.url_at(epoch, slot)
        sample = read_sample_at(url, self.storage_options, offset)
        return Document(
            sample.key, decode_text(sample, url, self.text_field), url, offset, epoch, slot
        )

    def state_dict(self) -> dict:
        return envelope(
            self.KIND, self.VERSION, epoch=self._epoch, slot=self._slot, offset=self._offset
        )

    def load_state_dict(self, state: Mapping) -> None:
        check_envelope(state, self.KIND, self.VERSION, ("epoch", "slot", "offset"))
        self._close_it()
        self._epoch, self._slot, self._offset = (
            int(state["epoch"]), int(state["slot"]), int(state["offset"]),
        )

    def _close_it(self) -> None:
        if self._it is not None:
            self._it.close()  # closes the file handle held by the generator
            self._it = None

    def close(self) -> None:
        self._close_it()
