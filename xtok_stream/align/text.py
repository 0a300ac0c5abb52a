"""Text-space alignment: chunk boundaries from each token's span in the *original* text.

Where the text is known (teacher stage, evals), each token's ``[start, end)`` in the original
string (HF fast tokenizers' ``offset_mapping``, or a lossless byte table's running offsets)
says what it stands for, whatever the tokenizer did to the text on the way (lower-casing, NFKC,
``##``/``</w>`` markers, dummy-prefix spaces, ``<unk>``). A *cut* before token k is possible
where every earlier token ends at or before every later token starts; its interval
``[A_k, B_k]`` = [max end before k, min start from k] is wider than a point where the
tokenizer represents no token for the text in between (WordPiece drops spaces). Two sides share
a boundary where their cut intervals overlap; a two-pointer walk finds them in linear time::

    text      "Hi  you"
    student   |Hi|Ġ|Ġyou|     cuts [0,0] [2,2] [3,3] [7,7]
    teacher   |hi|you|        cuts [0,0] [2,4] [7,7]   (WordPiece: the spaces are no token)
    shared    [0,0]~[0,0], [2,2]~[2,4], [7,7]~[7,7]  ->  chunks s[0:1]~t[0:1], s[1:3]~t[1:2]

Exactness is a position fact, never a byte comparison: a chunk is exact when its text tokens are
all plain text (no ``<unk>``, no special token parsed from literal text); its two sides then
cover the same span of the original text by construction (characters one side leaves out are
covered by no token of that side at all). Zero-width specials (BOS/EOS/PAD/control) at a shared
boundary are paired by ``special_key`` as in ``core.py``; a side that ends first (truncation)
leaves the other's rest as ``TRUNCATED_TAIL``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .core import TEXT, UNK, _is_special, _tail_reason, _unpaired


@njit(cache=True)
def _cuts(lo, hi, limit):
    """Per cut position k in [0, n]: (A_k, B_k) over the tokens that cover text; the cut at the
    end reaches ``limit`` (or is the point A_n when ``limit`` < A_n, e.g. -1 for truncated)."""
    n = lo.shape[0]
    a = np.empty(n + 1, np.int64)
    b = np.empty(n + 1, np.int64)
    run = np.int64(0)
    for k in range(n):
        a[k] = run
        if hi[k] > lo[k] and hi[k] > run:
            run = hi[k]
    a[n] = run
    run = np.int64(limit) if limit >= run else run
    b[n] = run
    for k in range(n - 1, -1, -1):
        if hi[k] > lo[k] and lo[k] < run:
            run = lo[k]
        b[k] = run
    return a, b


@njit(cache=True)
def _zero_special(r, lo, hi):
    """A special token that covers no text. A zero-width ``<unk>`` is one too: it stands for no
    unknown text, so it is the EOS of a tokenizer whose unk is its EOS (paired by its key)."""
    return (_is_special(r) or r == UNK) and hi <= lo


@njit(cache=True)
def _next_cut(a, b, k, n):
    k += 1
    while k < n and a[k] > b[k]:
        k += 1
    return k


@njit(cache=True)
def text_align_kernel(s_ids, s_lo, s_hi, s_role, s_key, s_limit,
                      t_ids, t_lo, t_hi, t_role, t_key, t_limit):
    """Align two token sequences by their text spans. ``*_limit``: end of the text the side
    tokenized, or -1 when the side was truncated (its text ends with its last token). Returns
    (chunks [K,5], s_un [U,2], t_un)."""
    n = s_ids.shape[0]
    m = t_ids.shape[0]
    sa, sb = _cuts(s_lo, s_hi, s_limit)
    ta, tb = _cuts(t_lo, t_hi, t_limit)
    chunks = np.empty((min(n, m) + 1, 5), np.int32)
    s_un = np.empty((n, 2), np.int32)
    t_un = np.empty((m, 2), np.int32)
    nk = 0
    us = 0
    ut = 0
    i = 0
    j = 0
    while i < n and j < m:
        zs = _zero_special(s_role[s_ids[i]], s_lo[i], s_hi[i])
        zt = _zero_special(t_role[t_ids[j]], t_lo[j], t_hi[j])
        if zs or zt:
            # a run of zero-width specials at a shared boundary: pair equal keys in order
            i2 = i
            while i2 < n and _zero_special(s_role[s_ids[i2]], s_lo[i2], s_hi[i2]):
                i2 += 1
            j2 = j
            while j2 < m and _zero_special(t_role[t_ids[j2]], t_lo[j2], t_hi[j2]):
                j2 += 1
            while i < i2 and j < j2:
                ks = s_key[s_ids[i]]
                kt = t_key[t_ids[j]]
                if ks == kt:
                    chunks[nk, 0] = i
                    chunks[nk, 1] = i + 1
                    chunks[nk, 2] = j
                    chunks[nk, 3] = j + 1
                    chunks[nk, 4] = 1
                    nk += 1
                    i += 1
                    j += 1
                    continue
                s_later = False
                for k in range(j + 1, j2):
                    s_later = s_later or t_key[t_ids[k]] == ks
                t_later = False
                for k in range(i + 1, i2):
                    t_later = t_later or s_key[s_ids[k]] == kt
                if s_later == t_later or t_later:
                    s_un[us, 0] = i
                    s_un[us, 1] = _unpaired(s_role[s_ids[i]])
                    us += 1
                    i += 1
                if s_later == t_later or s_later:
                    t_un[ut, 0] = j
                    t_un[ut, 1] = _unpaired(t_role[t_ids[j]])
                    ut += 1
                    j += 1
            while i < i2:
                s_un[us, 0] = i
                s_un[us, 1] = _unpaired(s_role[s_ids[i]])
                us += 1
                i += 1
            while j < j2:
                t_un[ut, 0] = j
                t_un[ut, 1] = _unpaired(t_role[t_ids[j]])
                ut += 1
                j += 1
            continue
        # Next shared cut: advance the side whose cut interval lies wholly before the other's.
        # A side's cut at its very end also stands for "nothing more here" (truncation).
        i1 = _next_cut(sa, sb, i, n)
        j1 = _next_cut(ta, tb, j, m)
        while True:
            if i1 < n and sb[i1] < ta[j1]:
                i1 = _next_cut(sa, sb, i1, n)
            elif j1 < m and tb[j1] < sa[i1]:
                j1 = _next_cut(ta, tb, j1, m)
            else:
                break
        # trailing zero-width specials belong to the boundary, not to the chunk
        while i1 > i + 1 and _zero_special(s_role[s_ids[i1 - 1]], s_lo[i1 - 1], s_hi[i1 - 1]):
            i1 -= 1
        while j1 > j + 1 and _zero_special(t_role[t_ids[j1 - 1]], t_lo[j1 - 1], t_hi[j1 - 1]):
            j1 -= 1
        clean = True
        cov_s = False
        cov_t = False
        for k in range(i, i1):
            r = s_role[s_ids[k]]
            cov_s = cov_s or s_hi[k] > s_lo[k]
            clean = clean and (r == TEXT or (r != UNK and s_hi[k] <= s_lo[k]))
        for k in range(j, j1):
            r = t_role[t_ids[k]]
            cov_t = cov_t or t_hi[k] > t_lo[k]
            clean = clean and (r == TEXT or (r != UNK and t_hi[k] <= t_lo[k]))
        # the closing cuts must overlap: otherwise one side holds text the other never reaches
        # (a truncated side's cut at its end is a point, see ``limit``)
        if not (sa[i1] <= tb[j1] and ta[j1] <= sb[i1]):
            clean = False
        chunks[nk, 0] = i
        chunks[nk, 1] = i1
        chunks[nk, 2] = j
        chunks[nk, 3] = j1
        chunks[nk, 4] = 1 if (clean and cov_s and cov_t) else 0
        nk += 1
        i = i1
        j = j1
    for k in range(i, n):
        s_un[us, 0] = k
        s_un[us, 1] = _tail_reason(s_role[s_ids[k]])
        us += 1
    for k in range(j, m):
        t_un[ut, 0] = k
        t_un[ut, 1] = _tail_reason(t_role[t_ids[k]])
        ut += 1
    return chunks[:nk], s_un[:us], t_un[:ut]


def char_to_byte(text: str) -> np.ndarray:
    """int64 [len(text)+1]: UTF-8 byte offset of every character position of ``text``."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    blen = 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)
    out = np.zeros(len(cps) + 1, np.int64)
    np.cumsum(blen, out=out[1:])
    return out


def offsets_array(offsets, n: int, what: str) -> np.ndarray:
    """``offset_mapping`` (list of pairs or [n, 2] array) as a checked int64 [n, 2] array."""
    from ..errors import ConfigError

    a = np.asarray(offsets, dtype=np.int64).reshape(-1, 2) if len(offsets) else np.zeros((0, 2), np.int64)
    if a.shape[0] != n:
        raise ConfigError(f"{what} has {a.shape[0]} (start, end) pairs for {n} token ids")
    if a.size and (a.min() < 0 or np.any(a[:, 1] < a[:, 0])):
        raise ConfigError(f"{what} holds a negative or reversed (start, end) pair")
    return a


@njit(cache=True)
def table_spans(ids, off, lens, buf, role, dummy, text):
    """Byte spans of ``ids`` in ``text`` (UTF-8) when the table's bytes spell it exactly (a
    dummy-prefix space after a segment start aside); ok=False otherwise."""
    n = ids.shape[0]
    lt = text.shape[0]
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    skip = np.zeros(n, np.uint8)
    p = np.int64(0)
    fresh = True
    for k in range(n):
        t = ids[k]
        ln = np.int64(lens[t])
        lo[k] = p
        hi[k] = p
        if ln == 0:
            fresh = fresh or role[t] != TEXT
            continue
        o = off[t]
        s0 = np.int64(0)
        if fresh and dummy and buf[o] == 32 and (p >= lt or text[p] != 32):
            s0 = 1
            skip[k] = 1
        fresh = False
        if p + ln - s0 > lt:
            return lo, hi, skip, False
        for x in range(s0, ln):
            if buf[o + x] != text[p + x - s0]:
                return lo, hi, skip, False
        p += ln - s0
        hi[k] = p
    return lo, hi, skip, p == lt


def side_spans(table, tokenizer, ids: np.ndarray, text: str, text_bytes: np.ndarray,
               offsets, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, skip) byte spans of one side: from ``offsets`` (char offsets into ``text``,
    as HF's ``offset_mapping``), else from a lossless table whose bytes spell the text, else from
    re-encoding the text when that gives exactly ``ids``. ``skip``: leading table bytes that are
    not text (a dummy-prefix space), for the byte check of lossless sides."""
    from ..errors import ConfigError

    if offsets is None and table.lossless:
        lo, hi, skip, ok = table_spans(ids, table.offsets, table.lengths, table.buf, table.role,
                                       table.dummy_prefix, text_bytes)
        if ok:
            return lo, hi, skip
    if offsets is None:
        enc = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
        if enc.ids != ids.tolist():
            raise ConfigError(
                f"{what}_offsets are needed: {what}_ids are not tokenizer '{table.name}''s encoding "
                f"of the text (add_special_tokens=False) and its byte table is {table.mode}; pass "
                f"the encoding's offset_mapping as {what}_offsets, or use Aligner.align (bytes only)"
            )
        offsets = enc.offsets
    a = offsets_array(offsets, len(ids), f"{what}_offsets")
    c2b = char_to_byte(text)
    if a.size and a.max() > len(text):
        raise ConfigError(f"{what}_offsets point past the end of the text ({len(text)} characters)")
    lo, hi = c2b[a[:, 0]], c2b[a[:, 1]]
    skip = np.zeros(len(ids), np.uint8)
    if table.dummy_prefix and len(ids):  # a leading space the text does not hold there
        lens = table.lengths[ids]
        first = table.buf[np.minimum(table.offsets[ids], len(table.buf) - 1)]
        safe = np.minimum(lo, max(len(text_bytes) - 1, 0))
        at_space = (text_bytes[safe] == 32) if len(text_bytes) else np.zeros(len(ids), bool)
        # the token's space is not the text's (a lone "▁" before "\n" shares the newline's span)
        skip[(lens > 0) & (first == 32) & ~at_space] = 1
    return lo, hi, skip
