"""``teacher``: one teacher's tokens and alignment for every packed sequence.

A 1:1 map after ``pack``. For each sequence it tokenizes the pieces' texts with the teacher's
tokenizer, document by document, with the teacher's own conventions (its BOS before a document's
first piece when the teacher adds one, its EOS after a document's last piece, mirroring the
student's EOS), truncates to ``max_len`` and aligns against the student tokens::

    student  [a0 a1 EOS | b0 b1 b2]        pieces (a, 0, 7, ends), (b, 0, 12)
    teacher  [A0 A1 A2 EOS' | B0 B1]       A* = teacher tokens of text a, B* of b[0:12]

The result rides on ``PackedSequence.extras[name]`` as numpy arrays; :func:`collate` turns a batch
of them into tensors. Tokenizers and aligners are built lazily once per process (the stage
pickles as its specs). A teacher with the student's tokenizer takes an identity fast path.
Cursor: the source's (the stage holds nothing between items).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from ..align import Aligner
from ..align.chunks import chunk_coo, chunk_ids
from ..config import TeacherConfig
from ..errors import ConfigError, StateError
from ..records import PackedSequence
from ..state import StatefulMap, within
from ..tokenizers import load_tokenizer


@functools.lru_cache(maxsize=32)
def _conventions(name: str) -> tuple[Any, int | None, int | None]:
    """(backend tokenizer, BOS id if the tokenizer puts one before a plain encode, EOS id);
    once per process, shared by every lane."""
    tok = load_tokenizer(name)
    bos = None
    if tok.bos_token_id is not None:
        ids = tok("a", add_special_tokens=True)["input_ids"]
        bos = tok.bos_token_id if ids and ids[0] == tok.bos_token_id else None
    return tok.backend_tokenizer, bos, tok.eos_token_id


@functools.lru_cache(maxsize=32)
def _aligner(student: str, teacher: str, max_comb_len: int) -> Aligner:
    return Aligner(load_tokenizer(student), load_tokenizer(teacher), max_comb_len=max_comb_len)


class TeacherAligner(StatefulMap):
    """Tokenizes every sequence's texts with the teacher and aligns them to the student's."""

    KIND, VERSION = "teacher", 1

    def __init__(self, source: Any, *, student: str, teacher: TeacherConfig, max_len: int):
        self.source, self.student, self.teacher, self.max_len = source, student, teacher, max_len
        self.name = teacher.key
        self.identity = teacher.tokenizer == student
        self._ready = False

    def _setup(self) -> None:
        self._backend, self._bos, self._eos = _conventions(self.teacher.tokenizer)
        if not self.identity:
            self._aligner = _aligner(self.student, self.teacher.tokenizer, self.teacher.max_comb_len)
        self._ready = True

    def __iter__(self) -> TeacherAligner:
        return self

    def __next__(self) -> PackedSequence:
        try:
            seq = next(self.source)
        except StateError as exc:  # a restored cursor found bad at its first read
            raise within("source", exc) from exc
        if not self._ready:
            self._setup()
        seq.extras[self.name] = self._identity(seq) if self.identity else self._tokenize_align(seq)
        return seq

    def _identity(self, seq: PackedSequence) -> dict:
        n = min(seq.length, self.max_len)
        ids = seq.input_ids[:n].copy()
        spans = np.stack([np.arange(n), np.arange(1, n + 1)], axis=1).astype(np.int32)
        return {"input_ids": ids, "student_spans": spans, "teacher_spans": spans,
                "exact": np.ones(n, bool), "n_student": seq.length,
                "metrics": np.array([n, n, n, n, 0, seq.length - n], np.float64)}

    def _tokenize_align(self, seq: PackedSequence) -> dict:
        encs = self._backend.encode_batch(seq.texts, add_special_tokens=False)
        flat: list[int] = []
        spans: list[tuple[int, int]] = []  # char offsets into the joined piece texts
        base = 0
        for piece, text, enc in zip(seq.pieces, seq.texts, encs):
            # not char_start == 0: a first piece may hold only the partial bytes of the first
            # character, and then the next piece starts at char 0 too
            if self._bos is not None and piece.starts_document:
                flat.append(self._bos)
                spans.append((base, base))
            flat.extend(enc.ids)
            spans.extend((a + base, b + base) for a, b in enc.offsets)
            base += len(text)
            if piece.ends_document and self._eos is not None:
                flat.append(self._eos)
                spans.append((base, base))
        ids = np.array(flat, dtype=np.int64)
        dropped = max(0, len(ids) - self.max_len)
        ids = ids[: self.max_len]
        s_ids = seq.input_ids[: seq.length]
        try:  # exact = same original text (align/text.py); bytes only if the student's ids do
            # not spell the pieces' text (a character split at the sequence edge)
            a = self._aligner.align_text("".join(seq.texts), s_ids, ids, None,
                                         spans[: self.max_len], teacher_truncated=dropped > 0)
        except ConfigError:
            a = self._aligner.align(s_ids, ids)
        m = a.metrics
        return {"input_ids": ids, "student_spans": a.student_spans, "teacher_spans": a.teacher_spans,
                "exact": a.exact, "n_student": seq.length,
                # chunks, exact chunks, student tokens in chunks, teacher tokens in chunks,
                # unaligned bytes, teacher tokens cut by max_len
                "metrics": np.array([
                    m.n_chunks, m.exact_chunks, m.student_tokens_per_chunk * m.n_chunks,
                    m.teacher_tokens_per_chunk * m.n_chunks, m.unaligned_bytes, dropped,
                ], np.float64)}



def collate(views: list[dict | None], *, student_width: int, width: int, pad_id: int,
            exact_token_match_only: bool) -> dict:
    """B views (None for padding rows) -> the teacher's batch tensors (see stages/batch.py)."""
    B = len(views)
    ids = np.full((B, width), pad_id, np.int64)
    lengths = np.zeros(B, np.int64)
    s_chunk = np.full((B, student_width), -1, np.int32)
    t_chunk = np.full((B, width), -1, np.int32)
    chunk_exact = np.zeros((B, student_width), bool)
    num_chunks = np.zeros(B, np.int64)
    s_coo, t_coo = [], []
    totals = np.zeros(6, np.float64)
    for b, v in enumerate(views):
        if v is None:
            s_coo.append(torch.empty((0, 2), dtype=torch.int64))
            t_coo.append(torch.empty((0, 2), dtype=torch.int64))
            continue
        n = len(v["input_ids"])
        ids[b, :n] = v["input_ids"]
        lengths[b] = n
        k = len(v["exact"])
        s_chunk[b] = chunk_ids(v["student_spans"], student_width)
        t_chunk[b] = chunk_ids(v["teacher_spans"], width)
        chunk_exact[b, :k] = v["exact"]
        num_chunks[b] = k
        sc, tc, _ = chunk_coo(v["student_spans"], v["teacher_spans"], student_width, width,
                              exact_token_match_only)
        s_coo.append(torch.from_numpy(sc))
        t_coo.append(torch.from_numpy(tc))
        totals += v["metrics"]
    mask = (np.arange(width)[None, :] < lengths[:, None])
    chunks = max(totals[0], 1.0)
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask.astype(np.int64)),
        "input_lengths": torch.from_numpy(lengths),
        "token_mask": torch.from_numpy(mask.astype(np.float32)),
        "student_chunk_id": torch.from_numpy(s_chunk),
        "teacher_chunk_id": torch.from_numpy(t_chunk),
        "chunk_exact": torch.from_numpy(chunk_exact),
        "num_chunks": torch.from_numpy(num_chunks),
        "student_chunk_coo": s_coo,
        "teacher_chunk_coo": t_coo,
        "metrics": {
            "chunks": int(totals[0]),
            "exact_share": float(totals[1] / chunks),
            "student_tokens_per_chunk": float(totals[2] / chunks),
            "teacher_tokens_per_chunk": float(totals[3] / chunks),
            "unaligned_bytes": int(totals[4]),
            "truncated_tokens": int(totals[5]),
        },
    }
