"""Chunk maps in the forms a distillation loss consumes, including the reference's COO.

The reference (NeMo-RL's cross-tokenizer collator) filters each sample's chunks before the loss:
a chunk is dropped when ``exact_token_match_only`` is set and it is not 1:1 (one token on each
side), when either start is the ``-1`` sentinel, or when it ends past the padded student/teacher
length; survivors are renumbered 0..n-1 and flattened into COO rows ``(position, chunk_id)``::

    chunks  s[0,1) t[0,2)   s[1,2) t[2,3)   s[2,4) t[3,4)      exact_token_match_only=True
    kept              no              yes             no
    student_coo [[1, 0]]      teacher_coo [[2, 0]]      num_chunks 1

Note the COO ids are the *filtered* numbering; ``Alignment.student_chunk_ids()`` keeps every chunk.
"""

from __future__ import annotations

import numpy as np


def _expand(spans: np.ndarray, ids: np.ndarray) -> np.ndarray:
    lens = (spans[:, 1] - spans[:, 0]).astype(np.int64)
    total = int(lens.sum())
    if total == 0:
        return np.empty((0, 2), np.int64)
    starts = np.repeat(spans[:, 0].astype(np.int64), lens)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    return np.stack([starts + within, np.repeat(ids.astype(np.int64), lens)], axis=1)


def chunk_ids(spans: np.ndarray, n: int) -> np.ndarray:
    """int32 [n]: the chunk index of each token position, -1 where no chunk covers it."""
    spans = np.asarray(spans).reshape(-1, 2)
    out = np.full(n, -1, np.int32)
    rows = _expand(spans, np.arange(len(spans)))
    out[rows[:, 0]] = rows[:, 1]
    return out


def chunk_keep_mask(
    student_spans: np.ndarray,
    teacher_spans: np.ndarray,
    student_len: int,
    teacher_len: int,
    exact_token_match_only: bool,
) -> np.ndarray:
    """bool [K]: the chunks the reference's filter keeps."""
    s, t = np.asarray(student_spans), np.asarray(teacher_spans)
    keep = (s[:, 0] != -1) & (t[:, 0] != -1) & (s[:, 1] <= student_len) & (t[:, 1] <= teacher_len)
    if exact_token_match_only:
        keep &= ((s[:, 1] - s[:, 0]) == 1) & ((t[:, 1] - t[:, 0]) == 1)
    return keep


def chunk_coo(
    student_spans: np.ndarray,
    teacher_spans: np.ndarray,
    student_len: int,
    teacher_len: int,
    exact_token_match_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(student_coo int64 [n,2], teacher_coo int64 [m,2], num_chunks)`` as the reference builds
    them (empty ``(0, 2)`` arrays when nothing survives)."""
    s, t = np.asarray(student_spans).reshape(-1, 2), np.asarray(teacher_spans).reshape(-1, 2)
    keep = chunk_keep_mask(s, t, student_len, teacher_len, exact_token_match_only)
    n = int(keep.sum())
    ids = np.arange(n)
    return _expand(s[keep], ids), _expand(t[keep], ids), n
