"""A re-implementation of the *reference* cross-tokenizer aligner, for benchmarking only.

The reference is NVIDIA NeMo-RL's ``TokenAligner.align``. We do **not** have its code: this
module is our own re-implementation written from the published description of the algorithm,
so that ``benchmarks/bench_align.py`` can compare ``xtok_stream.align`` against it on the same
machine, in the same run. It is not the reference's code, it is not used by the library, and it
is deliberately not optimised beyond what that description implies (pure Python + numpy, no
numba, no byte-level tables).

Algorithm (as described)
------------------------
1. **Canonical token strings.** ``tokenizer.convert_ids_to_tokens`` on both sides, then the
   visible markers are mapped back: byte-level ``Ġ`` -> space, ``Ċ`` -> newline (and ``ĉ`` ->
   tab), SentencePiece ``▁`` -> space; the result is NFC-normalised. Nothing else is decoded:
   byte-level tokens of non-ASCII text (``Ã©``) and SentencePiece byte-fallback tokens
   (``<0x0A>``) keep their vocabulary spelling, so they never equal the other side's spelling.
2. **Needleman-Wunsch DP** over the two token sequences. Moves: 1:1 (score ``match`` when the
   canonical strings are equal, ``mismatch`` otherwise), 1:N and N:1 merges for
   ``2 <= N <= max_comb_len`` (allowed only when the concatenated canonical strings are equal,
   score ``match``), and gaps (one token of one side left unpaired, score ``gap``). Each DP row
   is scored cell by cell in Python (string equality of tokens and of joined tokens); numpy
   holds the matrices, takes the best move per cell and resolves the in-row gap run.
3. **Chunks around anchors.** The DP runs over windows of ``dp_chunk_size`` student tokens
   against a teacher window sized by the length ratio. Unless a window reaches both ends, only
   the part of its path up to the last *anchor* (an exact 1:1 match) is kept and the next window
   starts right after that anchor, so window edges never cut a misaligned region.
4. **Post-processing.** Every 1:1 or merge step of the path is its own chunk; a gap step (a
   token of one side left unpaired) is folded into the chunk before it. A chunk is
   ``(s_tokens, t_tokens, s_start, s_end, t_start, t_end, is_correct)`` with half-open token
   ranges and ``is_correct`` = the chunk's joined canonical strings are equal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

Chunk = tuple[list[str], list[str], int, int, int, int, bool]

_NEG = -1e9

# move codes in the traceback matrix
_DIAG = 0
_UP = 1  # student token unpaired (gap on the teacher side)
_LEFT = 2  # teacher token unpaired
_S1TK = 10  # 10 + k: one student token == k teacher tokens
_SKT1 = 20  # 20 + k: k student tokens == one teacher token


def canonical_token(token: str) -> str:
    """Canonical spelling of one vocabulary token (see step 1 of the module docstring)."""
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return chr(int(token[3:5], 16))  # SentencePiece byte fallback, one byte as one char
    token = token.replace("Ġ", " ").replace("Ċ", "\n").replace("ĉ", "\t").replace("▁", " ")
    return unicodedata.normalize("NFC", token)


class ReferenceTokenAligner:
    """Our re-implementation of the reference ``TokenAligner`` (benchmark baseline only)."""

    def __init__(
        self,
        student_tokenizer: Any,
        teacher_tokenizer: Any,
        max_comb_len: int = 4,
        dp_chunk_size: int = 128,
        match: float = 2.0,
        mismatch: float = -1.0,
        gap: float = -1.0,
    ) -> None:
        if max_comb_len < 1 or dp_chunk_size < 2:
            raise ValueError("max_comb_len >= 1 and dp_chunk_size >= 2 are required")
        self.student_tokenizer = student_tokenizer
        self.teacher_tokenizer = teacher_tokenizer
        self.max_comb_len = max_comb_len
        self.dp_chunk_size = dp_chunk_size
        self.match, self.mismatch, self.gap = match, mismatch, gap

    # -- step 1 ---------------------------------------------------------------------------------
    @staticmethod
    def canonical_tokens(tokenizer: Any, ids: Sequence[int]) -> list[str]:
        ids = [int(i) for i in ids]
        return [canonical_token(t or "") for t in tokenizer.convert_ids_to_tokens(ids)]

    # -- public API -----------------------------------------------------------------------------
    def align(self, student_ids: Sequence[int], teacher_ids: Sequence[int]) -> list[Chunk]:
        """Align two id sequences; returns the chunk list (see module docstring, step 4)."""
        s = self.canonical_tokens(self.student_tokenizer, student_ids)
        t = self.canonical_tokens(self.teacher_tokenizer, teacher_ids)
        return self.align_strings(s, t)

    def align_strings(self, s: list[str], t: list[str]) -> list[Chunk]:
        """Align two canonical token-string sequences."""
        return self._postprocess(s, t, self._path(s, t))

    # -- step 3: windows around anchors ---------------------------------------------------------
    def _path(self, s: list[str], t: list[str]) -> list[tuple[int, int, int, int]]:
        """DP path as steps ``(s_start, s_end, t_start, t_end)`` covering both sides."""
        n_total, m_total = len(s), len(t)
        steps: list[tuple[int, int, int, int]] = []
        i0 = j0 = 0
        ratio = m_total / max(n_total, 1)
        while i0 < n_total or j0 < m_total:
            i1 = min(n_total, i0 + self.dp_chunk_size)
            if i1 == n_total:
                j1 = m_total
            else:
                j1 = min(m_total, j0 + int((i1 - i0) * ratio * 1.25) + 8)
            last = i1 == n_total and j1 == m_total
            window = self._dp(s[i0:i1], t[j0:j1], free_teacher_end=not last)
            window = [(a + i0, b + i0, c + j0, d + j0) for a, b, c, d in window]
            if not last:
                cut = None
                for k in range(len(window) - 1, 0, -1):  # last anchor, not the first step
                    a, b, c, d = window[k]
                    if b - a == 1 and d - c == 1 and s[a] == t[c]:
                        cut = k + 1
                        break
                if cut is not None:
                    window = window[:cut]
            if not window:  # cannot happen with a non-empty window; guard against a stall
                raise RuntimeError("DP made no progress")
            steps.extend(window)
            i0, j0 = window[-1][1], window[-1][3]
        return steps

    # -- step 2: the DP over one window ---------------------------------------------------------
    def _dp(
        self, s: list[str], t: list[str], free_teacher_end: bool
    ) -> list[tuple[int, int, int, int]]:
        n, m, kmax = len(s), len(t), self.max_comb_len
        if n == 0:
            return [(0, 0, j, j + 1) for j in range(m)] if not free_teacher_end else []
        if m == 0:
            return [(i, i + 1, 0, 0) for i in range(n)]
        # t_cat[k][j]: t[j-k+1 .. j] joined (None where it does not exist); likewise s_cat
        t_cat = {k: [None] * (k - 1) + ["".join(t[j - k + 1 : j + 1]) for j in range(k - 1, m)]
                 for k in range(2, kmax + 1)}
        s_cat = {k: [None] * (k - 1) + ["".join(s[i - k + 1 : i + 1]) for i in range(k - 1, n)]
                 for k in range(2, kmax + 1)}

        match, mismatch, gap = self.match, self.mismatch, self.gap
        H = np.full((n + 1, m + 1), _NEG)
        P = np.zeros((n + 1, m + 1), dtype=np.int8)
        cols = np.arange(m + 1, dtype=np.float64)
        H[0] = gap * cols
        P[0, 1:] = _LEFT
        H[:, 0] = gap * np.arange(n + 1)
        P[1:, 0] = _UP
        n_moves = 2 + 2 * (kmax - 1)
        cand = np.empty((n_moves, m), dtype=np.float64)
        codes = np.array(
            [_DIAG, _UP]
            + [_S1TK + k for k in range(2, kmax + 1)]
            + [_SKT1 + k for k in range(2, kmax + 1)],
            dtype=np.int8,
        )
        for i in range(1, n + 1):
            prev = H[i - 1]
            # student token unpaired
            cand[1] = prev[1:] + gap
            cand[2:] = _NEG
            # 1:1 and merges, cell by cell: a merge is allowed when the joined strings are equal
            s_i = s[i - 1]
            for j in range(1, m + 1):
                t_j = t[j - 1]
                cand[0, j - 1] = prev[j - 1] + (match if s_i == t_j else mismatch)
                for k in range(2, kmax + 1):
                    # one student token == k teacher tokens: from (i-1, j-k)
                    if j >= k and t_cat[k][j - 1] == s_i:
                        cand[k, j - 1] = prev[j - k] + match
                    # k student tokens == one teacher token: from (i-k, j-1)
                    if i >= k and s_cat[k][i - 1] == t_j:
                        cand[kmax - 1 + k, j - 1] = H[i - k, j - 1] + match
            best = cand.argmax(axis=0)
            c = cand[best, np.arange(m)]
            # teacher token unpaired (same row): H[i, j] = max(c[j], H[i, j-1] + gap)
            full = np.empty(m + 1)
            full[0] = H[i, 0]
            full[1:] = c
            run = np.maximum.accumulate(full - gap * cols) + gap * cols
            H[i] = run
            P[i, 1:] = np.where(run[1:] > c + 1e-9, _LEFT, codes[best])
        # traceback
        i, j = n, m
        if free_teacher_end:
            j = int(np.argmax(H[n]))
        out: list[tuple[int, int, int, int]] = []
        while i > 0 or j > 0:
            mv = int(P[i, j])
            if mv == _DIAG:
                out.append((i - 1, i, j - 1, j))
                i, j = i - 1, j - 1
            elif mv == _UP:
                out.append((i - 1, i, j, j))
                i -= 1
            elif mv == _LEFT:
                out.append((i, i, j - 1, j))
                j -= 1
            elif mv > _SKT1:
                k = mv - _SKT1
                out.append((i - k, i, j - 1, j))
                i, j = i - k, j - 1
            else:
                k = mv - _S1TK
                out.append((i - 1, i, j - k, j))
                i, j = i - 1, j - k
        out.reverse()
        return out

    # -- step 4 ---------------------------------------------------------------------------------
    @staticmethod
    def _postprocess(
        s: list[str], t: list[str], steps: list[tuple[int, int, int, int]]
    ) -> list[Chunk]:
        # each 1:1 / merge step is a chunk; a gap step (one side empty) is folded into the
        # chunk before it, or into the next one at the very start
        spans: list[list[int]] = []
        for a, b, c, d in steps:
            is_gap = a == b or c == d
            if spans and (is_gap or spans[-1][0] == spans[-1][1] or spans[-1][2] == spans[-1][3]):
                spans[-1][1], spans[-1][3] = b, d
            else:
                spans.append([a, b, c, d])
        chunks: list[Chunk] = []
        for a, b, c, d in spans:
            st, tt = s[a:b], t[c:d]
            chunks.append((st, tt, a, b, c, d, "".join(st) == "".join(tt)))
        return chunks


def summarize(chunks: list[Chunk]) -> dict[str, float]:
    """Chunk count, exact (``is_correct``) count and share."""
    n = len(chunks)
    exact = sum(1 for c in chunks if c[6])
    return {"chunks": n, "exact": exact, "exact_share": exact / n if n else float("nan")}
