"""Small records passed between stages.

Every record carries where it came from, so a batch can be traced back to shard, member and
character range (the ``--dump`` ledger is built from these).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Document:
    """One sample's text, as read from a shard.

    ``shard`` is the URL, ``offset`` the byte offset of the sample's first tar header in it;
    ``(epoch, slot, offset)`` is the compact re-fetch position within its lane (the sample can be
    read again with one range request).
    """

    key: str
    text: str
    shard: str
    offset: int
    epoch: int = 0
    slot: int = 0
    char_base: int = 0  # > 0 for the later windows of a huge document read in parts
    last_part: bool = True  # False for all but the last window of a huge document

    @property
    def position(self) -> list[int]:
        return [self.epoch, self.slot, self.offset]


@dataclass(frozen=True, slots=True)
class Piece:
    """A contiguous part of one document inside a packed sequence.

    ``char_start``/``char_end`` index the document's text (Python str positions);
    ``token_start``/``token_end`` index the sequence and include the document's EOS when the
    document ends in this piece. A character split across two sequences by a byte-level
    tokenizer belongs to the later piece.
    """

    key: str
    char_start: int
    char_end: int
    token_start: int
    token_end: int
    ends_document: bool
    starts_document: bool = True  # holds the document's first token (where a teacher's BOS goes)


@dataclass(slots=True)
class PackedSequence:
    """Exactly ``seq_len`` student tokens (``length`` real, the rest padding at an epoch end)."""

    input_ids: np.ndarray  # int64 [seq_len]
    length: int
    pieces: list[Piece]
    texts: list[str]  # each piece's text (teachers re-tokenize these with their own EOS/BOS)
    extras: dict = field(default_factory=dict)  # per-teacher outputs, filled by later stages
    source: int = 0  # index into the pipeline's ``sources:`` (stages/mix.py); 0 for one source

    def ledger(self) -> list[list]:
        return [[p.key, p.char_start, p.char_end] for p in self.pieces]
