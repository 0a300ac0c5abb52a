"""``shuffle``: a bounded document-shuffle buffer whose state holds positions, not texts.

Each draw takes slot ``draw(seed, lane, counter) % len(buffer)``, swaps the last document into
its place and refills from the source.

Cursor (grain's snapshot + replay): ``{"counter", "buffer": [[epoch, slot, offset], ...],
"source": ..., "since"}`` = the draw counter, the buffered documents' re-fetch positions and the
source cursor at the last *snapshot*, plus how many documents were handed out since. A snapshot
is taken every ``size`` documents, so ``state_dict()`` costs O(1) per step (the snapshot is
shared, not rebuilt) and building snapshots costs O(1) amortised. Restoring re-fetches the
buffer (batched per shard: :meth:`~xtok_stream.stages.read.LaneReader.fetch_many`), then
replays ``since`` draws (at most ``size`` documents read in order). A 1,000-document buffer costs
~20 KB of state per lane, not its text; ``shuffle.buffer x num_lanes`` is checked against
``shuffle.state_budget`` when the config loads.

The windows of a huge document read in parts (``on_bad_data.huge_document: split``) are not
buffered: they pass straight through, in order, when the fill meets them (a window has no
re-fetch position of its own, and a document's parts must stay in order).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ..errors import StateError
from ..lanes import draw
from ..records import Document
from ..state import check_fields, envelope, get_int, nested, within
from .read import LaneReader


class Shuffler:
    KIND, VERSION = "shuffle", 2  # v2: snapshot + replay count (v1 rebuilt the buffer per step)

    def __init__(self, source: LaneReader, *, size: int, seed: int, lane: int):
        self.source, self.size, self.seed, self.lane = source, size, seed, lane
        self._buffer: list[Document] = []
        self._counter = 0
        self._snap: dict | None = None  # {"counter", "buffer", "source"} at the last snapshot
        self._since = 0  # documents handed out since the snapshot

    def __iter__(self) -> Shuffler:
        return self

    def _snapshot(self) -> dict:
        return {"counter": self._counter, "buffer": [d.position for d in self._buffer],
                "source": self.source.state_dict()}

    def __next__(self) -> Document:
        if self._snap is None or self._since >= max(1, self.size):
            self._snap, self._since = self._snapshot(), 0
        doc = self._draw()
        self._since += 1
        return doc

    def _draw(self) -> Document:
        while len(self._buffer) < self.size:
            try:
                doc = next(self.source)
            except StopIteration:
                break
            except StateError as exc:  # a restored cursor found bad at its first read
                raise within("source", exc) from exc
            if doc.char_base or not doc.last_part:
                return doc  # a window of a huge document: see the module docstring
            self._buffer.append(doc)
        if not self._buffer:
            raise StopIteration
        j = draw(self.seed, self.lane, self._counter, len(self._buffer))
        self._counter += 1
        doc = self._buffer[j]
        self._buffer[j] = self._buffer[-1]
        self._buffer.pop()
        return doc

    @property
    def metrics(self) -> dict:
        return self.source.metrics

    def state_dict(self) -> dict:
        snap = self._snap if self._snap is not None else self._snapshot()
        return envelope(self.KIND, self.VERSION, counter=snap["counter"], buffer=snap["buffer"],
                        source=snap["source"], since=self._since)

    def load_state_dict(self, state: Mapping) -> None:
        check_fields(state, self.KIND, self.VERSION, ("counter", "buffer", "source", "since"))
        counter = get_int(state, "counter", self.KIND)
        since = get_int(state, "since", self.KIND, hi=max(1, self.size),
                        hint="a snapshot is taken every shuffle.buffer documents")
        buffer = state["buffer"]
        if not isinstance(buffer, list) or len(buffer) > self.size:
            raise StateError(f"buffer: must be a list of at most shuffle.buffer={self.size} "
                             f"positions, got {type(buffer).__name__} of "
                             f"{len(buffer) if isinstance(buffer, list) else '?'}")
        positions = []
        for i, p in enumerate(buffer):
            with nested(f"buffer.{i}"):
                positions.append(list(self.source.check_position(p)))
        with nested("source"):
            self.source.load_state_dict(state["source"])
        self._buffer = self.source.fetch_many(positions)
        self._counter = counter
        self._snap = {"counter": counter, "buffer": positions,
                      "source": copy.deepcopy(dict(state["source"]))}
        for _ in range(since):  # replay: at most `size` documents, read in order
            try:
                self._draw()
            except StopIteration:
                raise StateError(f"since: {since} documents after the snapshot, but the lane "
                                 "ends before that: the state does not belong to this data"
                                 ) from None
        self._since = since

    def close(self) -> None:
        self._buffer = []
        self.source.close()
