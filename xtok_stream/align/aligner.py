"""Aligner: which student and teacher token ranges cover the same bytes.

``Aligner(student, teacher).align(s_ids, t_ids)`` returns an :class:`Alignment`: K chunks as
half-open token ranges on both sides, an ``exact`` flag (bytes verified equal through the byte
tables), the tokens left out of every chunk with an :class:`UnalignedReason`, and
:class:`AlignmentMetrics`. On each side, chunks and unaligned tokens partition the tokens.

``align`` is numpy/numba only with O(1) Python work per call (the tables are built once per
tokenizer and process; see ``tables.py``, the algorithm is in ``core.py``). ``align_batch``
aligns [B, T] rows with padding masks; ``to_reference_format`` gives the reference's
``(s_tokens, t_tokens, s_start, s_end, t_start, t_end, is_correct)`` tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import core
from .chunks import chunk_ids
from .tables import ByteTable, byte_table, resolve_tokenizer
from .text import side_spans, text_align_kernel


class UnalignedReason(IntEnum):
    """Why a token is in no chunk. Values are stable (batches and logs a trainer kept may
    hold them); 5 is retired (an unused ``DIVERGED``: text without resync forms one chunk)."""

    SPECIAL_UNPAIRED = core.R_SPECIAL_UNPAIRED  # BOS/EOS/control token with no partner there
    TRUNCATED_TAIL = core.R_TRUNCATED_TAIL  # beyond the bytes the other side holds
    UNK = core.R_UNK  # <unk> in a tail (inside a chunk it only makes the chunk non-exact)
    PAD = core.R_PAD  # masked out by align_batch, or an unpaired pad token


@dataclass(frozen=True)
class AlignmentMetrics:
    n_chunks: int
    exact_chunks: int
    one_to_one_chunks: int  # = student tokens in 1:1 chunks
    student_tokens_per_chunk: float
    teacher_tokens_per_chunk: float
    chunks_over_max_comb: int  # chunks with more than max_comb_len tokens on a side (kept)
    student_unaligned_bytes: int
    teacher_unaligned_bytes: int
    student_nonexact_bytes: int  # bytes inside non-exact chunks
    teacher_nonexact_bytes: int
    repairs: int  # divergences resynchronised by the local repair
    dummy_prefix_skips: int
    verify_failures: int  # exact chunks whose bytes differed (demoted; 0 unless a bug)
    text_space: bool = False  # aligned on original-text spans (align_text), not bytes alone

    @property
    def student_tokens_in_1to1(self) -> int:
        return self.one_to_one_chunks

    @property
    def unaligned_bytes(self) -> int:
        return self.student_unaligned_bytes + self.teacher_unaligned_bytes


@dataclass(frozen=True)
class Alignment:
    """Chunks pairing student and teacher token ranges (half-open, int32 [K, 2] each)."""

    student_spans: np.ndarray
    teacher_spans: np.ndarray
    exact: np.ndarray  # bool [K]
    student_unaligned: np.ndarray  # int32 [U] token indices
    student_unaligned_reason: np.ndarray  # int8 [U] UnalignedReason
    teacher_unaligned: np.ndarray
    teacher_unaligned_reason: np.ndarray
    student_skip: np.ndarray  # uint8 [n_student]: leading bytes that are not text (dummy prefix)
    teacher_skip: np.ndarray
    n_student: int
    n_teacher: int
    metrics: AlignmentMetrics

    def __len__(self) -> int:
        return int(self.exact.shape[0])

    def student_chunk_ids(self) -> np.ndarray:
        """int32 [n_student]: the chunk of each student token, -1 where unaligned."""
        return chunk_ids(self.student_spans, self.n_student)

    def teacher_chunk_ids(self) -> np.ndarray:
        return chunk_ids(self.teacher_spans, self.n_teacher)

    def unaligned(self, side: str = "student") -> list[tuple[int, UnalignedReason]]:
        idx, why = (
            (self.student_unaligned, self.student_unaligned_reason)
            if side == "student"
            else (self.teacher_unaligned, self.teacher_unaligned_reason)
        )
        return [(int(i), UnalignedReason(int(r))) for i, r in zip(idx, why)]

    def swapped(self) -> Alignment:
        """The same alignment seen from the teacher's side."""
        m = self.metrics
        return Alignment(
            self.teacher_spans, self.student_spans, self.exact,
            self.teacher_unaligned, self.teacher_unaligned_reason,
            self.student_unaligned, self.student_unaligned_reason,
            self.teacher_skip, self.student_skip, self.n_teacher, self.n_student,
            replace(
                m,
                student_tokens_per_chunk=m.teacher_tokens_per_chunk,
                teacher_tokens_per_chunk=m.student_tokens_per_chunk,
                student_unaligned_bytes=m.teacher_unaligned_bytes,
                teacher_unaligned_bytes=m.student_unaligned_bytes,
                student_nonexact_bytes=m.teacher_nonexact_bytes,
                teacher_nonexact_bytes=m.student_nonexact_bytes,
            ),
        )  # fmt: skip

    def _embedded(self, s_lo: int, n_s: int, t_lo: int, n_t: int) -> Alignment:
        """This alignment of a row slice placed back in rows of n_s/n_t; the rest is PAD."""

        def side(lo, n_inner, n, un, why, skip):
            pad = np.concatenate([np.arange(lo), np.arange(lo + n_inner, n)]).astype(np.int32)
            idx = np.concatenate([un + lo, pad]).astype(np.int32)
            r = np.concatenate([why, np.full(len(pad), UnalignedReason.PAD, np.int8)])
            order = np.argsort(idx, kind="stable")
            full_skip = np.zeros(n, np.uint8)
            full_skip[lo : lo + n_inner] = skip
            return idx[order], r[order], full_skip

        su, sr, ss = side(s_lo, self.n_student, n_s, self.student_unaligned,
                          self.student_unaligned_reason, self.student_skip)  # fmt: skip
        tu, tr, ts = side(t_lo, self.n_teacher, n_t, self.teacher_unaligned,
                          self.teacher_unaligned_reason, self.teacher_skip)  # fmt: skip
        return Alignment(
            (self.student_spans + s_lo).astype(np.int32), (self.teacher_spans + t_lo).astype(np.int32),
            self.exact, su, sr, tu, tr, ss, ts, n_s, n_t, self.metrics,
        )  # fmt: skip


def _table_args(t: ByteTable) -> tuple:
    return (t.offsets, t.lengths, t.buf, t.role, t.special_key, t.dummy_prefix,
            t.lit_offsets, t.lit_lengths)


def _ids(x: Any, table: ByteTable, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(x, dtype=np.int64)
    if a.ndim != 1:
        raise ConfigError(f"{what} must be 1-D token ids, got shape {a.shape}; use align_batch")
    if a.size and (a.min() < 0 or a.max() >= table.vocab_size):
        raise ConfigError(
            f"{what} holds ids outside [0, {table.vocab_size}) of tokenizer '{table.name}'"
        )
    return a


class Aligner:
    """Aligns student ids with teacher ids (tokenizer objects or ``load_tokenizer`` names).

    ``max_comb_len`` is the reference's cap on tokens merged per side; exact chunks here are
    minimal by construction, so longer chunks are kept and counted in
    ``metrics.chunks_over_max_comb``. ``resync_bytes``/``max_window`` bound the local repair.
    """

    def __init__(
        self,
        student_tokenizer: Any,
        teacher_tokenizer: Any,
        *,
        max_comb_len: int = 4,
        resync_bytes: int = 16,
        max_window: int = 4096,
        verify: bool = True,
    ):
        if max_comb_len < 1:
            raise ConfigError(f"max_comb_len must be >= 1, got {max_comb_len}")
        if resync_bytes < 1 or max_window < 64:
            raise ConfigError("resync_bytes must be >= 1 and max_window >= 64")
        self.student_tokenizer = resolve_tokenizer(student_tokenizer)
        self.teacher_tokenizer = resolve_tokenizer(teacher_tokenizer)
        self.student_table = byte_table(self.student_tokenizer)
        self.teacher_table = byte_table(self.teacher_tokenizer)
        self.max_comb_len = int(max_comb_len)
        self.resync_bytes = int(resync_bytes)
        self.max_window = int(max_window)
        self.verify = verify
        self._s = _table_args(self.student_table)
        self._t = _table_args(self.teacher_table)

    @property
    def modes(self) -> dict[str, str]:
        """How each side's ids read as bytes (``tables.ByteTable.mode``): e.g. ``byte_level``,
        ``sentencepiece``, ``wordpiece-lossy``. With a ``-lossy`` side, ``align`` (ids only)
        marks byte-equal chunks exact; ``align_text`` proves them by text positions."""
        return {"student": self.student_table.mode, "teacher": self.teacher_table.mode}

    def warmup(self) -> Aligner:
        """Compile (or load from numba's cache) every kernel, so timings exclude it."""
        s = np.flatnonzero(self.student_table.lengths > 0)[:8]
        t = np.flatnonzero(self.teacher_table.lengths > 0)[:8]
        self.align(s, t)
        z = np.zeros(1, np.int64)
        text_align_kernel(z, z, z + 1, self.student_table.role, self.student_table.special_key, 1,
                          z, z, z + 1, self.teacher_table.role, self.teacher_table.special_key, 1)
        return self

    def align_text(
        self,
        text: str,
        student_ids: Any,
        teacher_ids: Any,
        student_offsets: Any = None,
        teacher_offsets: Any = None,
        *,
        student_truncated: bool = False,
        teacher_truncated: bool = False,
    ) -> Alignment:
        """Align two tokenizations of the same ``text`` by original-text positions (``text.py``):
        a chunk is exact only if both sides cover the same span of ``text``. ``*_offsets`` are
        per-token ``(start, end)`` character offsets into ``text`` (HF ``offset_mapping``; zero
        width for added BOS/EOS); left out, they come from a lossless byte table that spells the
        text, or from re-encoding ``text``. ``*_truncated``: that side's ids stop before the
        text's end (e.g. ``max_len``), so its rest is not a gap."""
        s = _ids(student_ids, self.student_table, "student_ids")
        t = _ids(teacher_ids, self.teacher_table, "teacher_ids")
        st, tt = self.student_table, self.teacher_table
        tb = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
        s_lo, s_hi, s_skip = side_spans(st, self.student_tokenizer, s, text, tb, student_offsets,
                                        "student")
        t_lo, t_hi, t_skip = side_spans(tt, self.teacher_tokenizer, t, text, tb, teacher_offsets,
                                        "teacher")
        n_text = len(tb)
        chunks, s_un, t_un = text_align_kernel(
            s, s_lo, s_hi, st.role, st.special_key, -1 if student_truncated else n_text,
            t, t_lo, t_hi, tt.role, tt.special_key, -1 if teacher_truncated else n_text,
        )  # fmt: skip
        # second check where both tables are lossless: the bytes agree too
        n_bad = self._unmark_unverified(chunks, s, s_skip, t, t_skip) if (
            self.verify and st.lossless and tt.lossless) else 0
        s_w = (s_hi - s_lo).astype(np.int32)
        t_w = (t_hi - t_lo).astype(np.int32)
        zs, zt = np.zeros(len(s), np.uint8), np.zeros(len(t), np.uint8)
        mv = core.metrics_kernel(chunks, np.arange(len(s)), s_w, zs, s_un,
                                 np.arange(len(t)), t_w, zt, t_un, self.max_comb_len)
        stats = np.array([0, int(s_skip.sum()) + int(t_skip.sum()), 0], np.int64)
        return self._alignment(chunks, s_un, t_un, s_skip, t_skip, mv, stats, n_bad,
                               len(s), len(t), text_space=True)

    def _unmark_unverified(self, chunks, s, s_skip, t, t_skip) -> int:
        """Clear the exact flag of chunks whose bytes differ on the two sides; how many."""
        st, tt = self.student_table, self.teacher_table
        bad = core.verify_exact(
            chunks, s, st.offsets, st.lengths, st.buf, s_skip,
            t, tt.offsets, tt.lengths, tt.buf, t_skip,
        )  # fmt: skip
        if len(bad):
            chunks[bad, 4] = 0
        return len(bad)

    def align(self, student_ids: Any, teacher_ids: Any) -> Alignment:
        s = _ids(student_ids, self.student_table, "student_ids")
        t = _ids(teacher_ids, self.teacher_table, "teacher_ids")
        chunks, s_un, t_un, s_skip, t_skip, stats = core.align_kernel(
            s, *self._s, t, *self._t, self.resync_bytes, self.max_window,
            self.student_table.lossless and self.teacher_table.lossless,
        )
        st, tt = self.student_table, self.teacher_table
        n_bad = self._unmark_unverified(chunks, s, s_skip, t, t_skip) if self.verify else 0
        mv = core.metrics_kernel(
            chunks, s, st.lengths, s_skip, s_un, t, tt.lengths, t_skip, t_un, self.max_comb_len
        )
        return self._alignment(chunks, s_un, t_un, s_skip, t_skip, mv, stats, n_bad, len(s), len(t))

    def _alignment(self, chunks, s_un, t_un, s_skip, t_skip, mv, stats, n_bad, n_s, n_t, *,
                   text_space: bool = False) -> Alignment:
        k = max(len(chunks), 1)
        metrics = AlignmentMetrics(
            n_chunks=len(chunks), exact_chunks=int(mv[0]), one_to_one_chunks=int(mv[1]),
            student_tokens_per_chunk=float(mv[2] / k), teacher_tokens_per_chunk=float(mv[3] / k),
            chunks_over_max_comb=int(mv[4]),
            student_unaligned_bytes=int(mv[5]), teacher_unaligned_bytes=int(mv[6]),
            student_nonexact_bytes=int(mv[7]), teacher_nonexact_bytes=int(mv[8]),
            repairs=int(stats[0]), dummy_prefix_skips=int(stats[1]), verify_failures=n_bad,
            text_space=text_space,
        )  # fmt: skip
        return Alignment(
            student_spans=chunks[:, 0:2], teacher_spans=chunks[:, 2:4],
            exact=chunks[:, 4].astype(bool),
            student_unaligned=s_un[:, 0], student_unaligned_reason=s_un[:, 1].astype(np.int8),
            teacher_unaligned=t_un[:, 0], teacher_unaligned_reason=t_un[:, 1].astype(np.int8),
            student_skip=s_skip, teacher_skip=t_skip,
            n_student=n_s, n_teacher=n_t, metrics=metrics,
        )  # fmt: skip

    def align_batch(
        self,
        student_ids: Any,
        teacher_ids: Any,
        student_mask: Any = None,
        teacher_mask: Any = None,
    ) -> list[Alignment]:
        """Align [B, T] rows with [B, T'] rows. Masks (1 = real token) must keep one contiguous
        block per row (left or right padding); masked positions are unaligned with reason PAD and
        indices refer to the padded rows."""
        s = _as_2d(student_ids, "student_ids")
        t = _as_2d(teacher_ids, "teacher_ids")
        if s.shape[0] != t.shape[0]:
            raise ConfigError(f"batch sizes differ: student {s.shape[0]}, teacher {t.shape[0]}")
        sm = _mask(student_mask, s.shape, "student_mask")
        tm = _mask(teacher_mask, t.shape, "teacher_mask")
        out = []
        for b in range(s.shape[0]):
            s_lo, s_hi = _block(sm[b], f"student_mask row {b}")
            t_lo, t_hi = _block(tm[b], f"teacher_mask row {b}")
            a = self.align(s[b, s_lo:s_hi], t[b, t_lo:t_hi])
            if (s_lo, s_hi, t_lo, t_hi) != (0, s.shape[1], 0, t.shape[1]):
                a = a._embedded(s_lo, s.shape[1], t_lo, t.shape[1])
            out.append(a)
        return out

    def to_reference_format(self, alignment: Alignment, student_ids: Any, teacher_ids: Any):
        return to_reference_format(
            alignment, student_ids, teacher_ids, self.student_tokenizer, self.teacher_tokenizer
        )

    def align_reference(self, student_ids: Any, teacher_ids: Any):
        """``align`` in the reference's tuple format."""
        return self.to_reference_format(self.align(student_ids, teacher_ids), student_ids, teacher_ids)


def _as_2d(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.int64)
    if a.ndim != 2:
        raise ConfigError(f"{what} must be [B, T], got shape {a.shape}")
    return a


def _mask(m: Any, shape: tuple, what: str) -> np.ndarray:
    if m is None:
        return np.ones(shape, bool)
    if hasattr(m, "detach"):
        m = m.detach().cpu().numpy()
    a = np.asarray(m).astype(bool)
    if a.shape != shape:
        raise ConfigError(f"{what} has shape {a.shape}, ids have {shape}")
    return a


def _block(row: np.ndarray, what: str) -> tuple[int, int]:
    idx = np.flatnonzero(row)
    if idx.size == 0:
        return 0, 0
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    if hi - lo != idx.size:
        raise ConfigError(f"{what} has holes; only left or right padding is supported")
    return lo, hi


def to_reference_format(
    alignment: Alignment,
    student_ids: Any,
    teacher_ids: Any,
    student_tokenizer: Any,
    teacher_tokenizer: Any,
) -> list[tuple[list[str], list[str], int, int, int, int, bool]]:
    """One ``(s_tokens, t_tokens, s_start, s_end, t_start, t_end, is_correct)`` per chunk, token
    strings from ``convert_ids_to_tokens``, half-open indices, is_correct = exact."""
    st = resolve_tokenizer(student_tokenizer).convert_ids_to_tokens(np.asarray(student_ids).tolist())
    tt = resolve_tokenizer(teacher_tokenizer).convert_ids_to_tokens(np.asarray(teacher_ids).tolist())
    return [
        (st[s0:s1], tt[t0:t1], s0, s1, t0, t1, ex)
        for (s0, s1), (t0, t1), ex in zip(
            alignment.student_spans.tolist(), alignment.teacher_spans.tolist(), alignment.exact.tolist()
        )
    ]
