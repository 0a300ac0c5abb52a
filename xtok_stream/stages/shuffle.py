"""``shuffle``: a bounded document-shuffle buffer whose state holds positions, not texts.

Each draw takes slot ``draw(seed, lane, counter) % len(buffer)``, swaps the last document into
its place and refills from the source. The cursor is ``{"counter", "buffer": [[epoch, slot,
offset], ...], "source": ...}``: restoring re-fetches each buffered document with one range request
(``DocumentReader.fetch``), so a 1,000-document buffer costs ~16 KB of state, not its text.

The windows of a huge document read in parts (``on_bad_data.huge_document: split``) are not
buffered: they pass straight through, in order, when the fill meets them (a window has no
re-fetch position of its own, and a document's parts must stay in order).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..dist.lanes import draw
from ..records import Document
from ..state import check_envelope, envelope
from .read import DocumentReader


class Shuffler:
    KIND, VERSION = "shuffle", 1

    def __init__(self, source: DocumentReader, *, size: int, seed: int, lane: int):
        self.source, self.size, self.seed, self.lane = source, size, seed, lane
        self._buffer: list[Document] = []
        self._counter = 0

    def __iter__(self) -> Shuffler:
        return self

    def __next__(self) -> Document:
        while len(self._buffer) < self.size:
            try:
                doc = next(self.source)
            except StopIteration:
                break
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

    def state_dict(self) -> dict:
        return envelope(
            self.KIND, self.VERSION, counter=self._counter,
            buffer=[d.position for d in self._buffer], source=self.source.state_dict(),
        )

    def load_state_dict(self, state: Mapping) -> None:
        check_envelope(state, self.KIND, self.VERSION, ("counter", "buffer", "source"))
        self.source.load_state_dict(state["source"])
        self._counter = int(state["counter"])
        self._buffer = [self.source.fetch(p) for p in state["buffer"]]

    def close(self) -> None:
        self._buffer = []
        self.source.close()
