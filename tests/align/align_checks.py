"""Shared checks for the align tests: oracles computed from the byte tables alone."""

from __future__ import annotations

import numpy as np

from xtok_stream.align import Alignment, ByteTable

# Fragments the properties must survive: CJK, ZWJ emoji, combining marks, RTL, CRLF, tabs,
# runs of spaces, code and dunder names, a lone Ã, emoji next to ASCII (byte fallback vs BPE).
FRAGMENTS = [
    "日本語のテキスト", "中文字符", "👨‍👩‍👧", "🙂", "a🙂b", "e\u0301", "ñ", "مرحبا بالعالم",
    "שלום עולם", "\r\n", "\t", "   ", "  \n\n", "def __init__(self):", "x = y + 1;", "Ã",
    "Hello", " world", "ABC123", "1234567", "{'k': [1, 2]}", "é", "naïve café", "🇫🇷",
]
ALPHABET = "abcXYZ019 \n\t.,_-ñé日本🙂\u0301\u200dمש"


def token_bytes(table: ByteTable, ids) -> list[bytes]:
    return [table.token_bytes(int(i)) for i in ids]


def effective_lengths(table: ByteTable, ids, text: str) -> np.ndarray:
    """Byte length of each token with the tokenizer's dummy-prefix space removed (oracle)."""
    lens = np.array([len(b) for b in token_bytes(table, ids)], dtype=np.int64)
    if table.dummy_prefix and not text.startswith(" ") and len(ids):
        first = next((k for k, n in enumerate(lens) if n), None)
        if first is not None and table.token_bytes(int(ids[first]))[:1] == b" ":
            lens[first] -= 1
    return lens


def check_partition(al: Alignment) -> None:
    """Property 1: per side, chunk ranges are non-empty, monotone, and chunks + unaligned
    tokens cover every token exactly once."""
    for spans, un, n in (
        (al.student_spans, al.student_unaligned, al.n_student),
        (al.teacher_spans, al.teacher_unaligned, al.n_teacher),
    ):
        assert spans.dtype == np.int32 and spans.shape == (len(al), 2)
        assert np.all(spans[:, 1] > spans[:, 0])
        assert np.all(spans[1:, 0] >= spans[:-1, 1])  # monotone, no overlap
        cover = np.zeros(n, np.int64)
        for s0, s1 in spans.tolist():
            cover[s0:s1] += 1
        np.add.at(cover, un, 1)
        assert np.all(cover == 1), np.flatnonzero(cover != 1)[:10]
    assert al.exact.dtype == bool
    assert len(al.student_unaligned) == len(al.student_unaligned_reason)
    assert len(al.teacher_unaligned) == len(al.teacher_unaligned_reason)


def check_exact_bytes(al: Alignment, s_ids, t_ids, st: ByteTable, tt: ByteTable) -> None:
    """Property 2: exact chunks hold equal bytes (through the tables, dummy prefix dropped)."""
    s_ids, t_ids = np.asarray(s_ids), np.asarray(t_ids)
    for (s0, s1), (t0, t1), ex in zip(al.student_spans.tolist(), al.teacher_spans.tolist(), al.exact):
        if ex:
            sb = st.ids_bytes(s_ids[s0:s1], skip=al.student_skip[s0:s1])
            tb = tt.ids_bytes(t_ids[t0:t1], skip=al.teacher_skip[t0:t1])
            assert sb == tb, (s0, s1, t0, t1, sb, tb)
    # only a dummy-prefix tokenizer may drop bytes, at most one per token
    assert al.student_skip.max(initial=0) <= int(st.dummy_prefix)
    assert al.teacher_skip.max(initial=0) <= int(tt.dummy_prefix)
    assert al.metrics.verify_failures == 0


def shared_boundaries(s_lens: np.ndarray, t_lens: np.ndarray) -> set[int]:
    """Oracle for property 3: byte offsets (> 0) that end a token on both sides."""
    return set(np.cumsum(s_lens).tolist()) & set(np.cumsum(t_lens).tolist()) - {0}


def chunk_end_offsets(al: Alignment, s_lens: np.ndarray) -> list[int]:
    cum = np.concatenate([[0], np.cumsum(s_lens)])
    return [int(cum[s1]) for s1 in al.student_spans[:, 1].tolist()]
