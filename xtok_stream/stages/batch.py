"""``batch``: packed sequences -> fixed-shape tensors.

=================  ============  ===============================================================
key                dtype, shape  meaning
=================  ============  ===============================================================
input_ids          int64 [B,T]   student tokens, ``pad_id`` after ``input_lengths``
attention_mask     int64 [B,T]   1 on real tokens
position_ids       int64 [B,T]   restart at 0 at every document piece (0 on padding)
doc_ids            int32 [B,T]   index of the piece (document part) in its sequence, -1 = padding
input_lengths      int64 [B]     real tokens per row
sample_mask        float32 [B]   0 for padding rows (the tail of an epoch) and padding batches
pieces             list[B]       per row: [[doc_key, char_start, char_end], ...]
source_ids         int64 [B]     index into ``sources:`` of the row's source (0 for one source),
                                 -1 on padding rows (a row holds one source: ``stages/mix.py``)
teachers           dict          per teacher name, the teacher's tensors (``stages/teacher.py``)
loss_mask          float32 [B,T] chat mode only: 1 on assistant content (``chat/pack.py``)
=================  ============  ===============================================================

T is ``seq_len`` rounded up to ``pad_to_multiple_of``. A short last batch is filled with padding
rows so shapes never change. Teacher stages put per-sequence outputs in
``PackedSequence.extras[name]``; ``teacher_collators`` maps each name to a function that turns the
B values (None for padding rows) into that teacher's tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..errors import StateError
from ..records import PackedSequence
from ..state import StatefulMap, within


class Batcher(StatefulMap):
    KIND, VERSION = "batch", 1

    def __init__(
        self,
        source: Any,
        *,
        batch_size: int,
        seq_len: int,
        pad_id: Callable[[], int] | int,
        pad_to_multiple_of: int = 1,
        teacher_collators: Mapping[str, Callable[[list[Any]], dict]] | None = None,
        loss_mask: bool = False,
    ):
        self.source, self.batch_size = source, batch_size
        m = pad_to_multiple_of
        self.width = -(-seq_len // m) * m
        self._pad_id = pad_id
        self.teacher_collators = dict(teacher_collators or {})
        self.loss_mask = loss_mask  # chat: sequences carry extras["_loss_mask"]

    @property
    def pad_id(self) -> int:
        return self._pad_id() if callable(self._pad_id) else int(self._pad_id)

    def __iter__(self) -> Batcher:
        return self

    def __next__(self) -> dict:
        seqs: list[PackedSequence] = []
        for _ in range(self.batch_size):
            try:
                seqs.append(next(self.source))
            except StopIteration:
                break
            except StateError as exc:  # a restored cursor found bad at its first read
                raise within("source", exc) from exc
        if not seqs:
            raise StopIteration
        return self.collate(seqs)

    def collate(self, seqs: list[PackedSequence]) -> dict:
        B, T = self.batch_size, self.width
        input_ids = np.full((B, T), self.pad_id, dtype=np.int64)
        doc_ids = np.full((B, T), -1, dtype=np.int32)
        position_ids = np.zeros((B, T), dtype=np.int64)
        lengths = np.zeros(B, dtype=np.int64)
        sample_mask = np.zeros(B, dtype=np.float32)
        ar = np.arange(T)
        pieces: list[list] = []
        for b, s in enumerate(seqs):
            n = s.length
            input_ids[b, :n] = s.input_ids[:n]
            starts = np.empty(len(s.pieces), dtype=np.int64)
            for i, p in enumerate(s.pieces):
                doc_ids[b, p.token_start : p.token_end] = i
                starts[i] = p.token_start
            position_ids[b, :n] = ar[:n] - starts[doc_ids[b, :n]]
            lengths[b], sample_mask[b] = n, 1.0
            pieces.append(s.ledger())
        pieces.extend([] for _ in range(B - len(seqs)))
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy((ar[None, :] < lengths[:, None]).astype(np.int64)),
            "position_ids": torch.from_numpy(position_ids),
            "doc_ids": torch.from_numpy(doc_ids),
            "input_lengths": torch.from_numpy(lengths),
            "sample_mask": torch.from_numpy(sample_mask),
            "pieces": pieces,
            "source_ids": torch.tensor([s.source for s in seqs] + [-1] * (B - len(seqs)),
                                       dtype=torch.int64),
        }
        if self.loss_mask:
            mask = np.zeros((B, T), np.float32)
            for b, s in enumerate(seqs):
                mask[b, : s.length] = s.extras["_loss_mask"][: s.length]
            batch["loss_mask"] = torch.from_numpy(mask)
        if self.teacher_collators:
            pad_rows = [None] * (B - len(seqs))
            batch["teachers"] = {
                name: collate([s.extras[name] for s in seqs] + pad_rows)
                for name, collate in self.teacher_collators.items()
            }
        return batch

    def empty_batch(self) -> dict:
        """An all-padding batch (``sample_mask`` 0): what a rank yields while others finish."""
        return self.collate([])

