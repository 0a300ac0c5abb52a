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

    ``shard`` is the URL; where in it the sample is depends on the shard's kind, so it is one of
    two fields: ``byte_offset``, the byte offset of a tar sample's first header, or ``row``, an
    Arrow/Parquet row index (the other is -1). :attr:`position` ``[epoch, slot, byte_offset or
    row]`` is the compact re-fetch position within its lane (one range request for a tar).
    """

    key: str
    text: str
    shard: str
    epoch: int = 0
    slot: int = 0
    byte_offset: int = -1  # tar shards
    row: int = -1  # arrow files
    char_base: int = 0  # > 0 for the later windows of a huge document read in parts
    last_part: bool = True  # False for all but the last window of a huge document

    @property
    def position(self) -> list[int]:
        """``[epoch, slot, byte_offset]`` (tar) or ``[epoch, slot, row]`` (arrow)."""
        return [self.epoch, self.slot, self.byte_offset if self.byte_offset >= 0 else self.row]


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
