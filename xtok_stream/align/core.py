"""Numba kernels of the aligner: byte gather, boundary-intersection walk, local repair, checks.

Pure numpy/numba, no I/O. Each side's token ids are turned into a byte stream through its
:class:`~xtok_stream.align.tables.ByteTable` (``gather``), with cumulative byte offsets ``cum``.
Where both streams hold the same bytes, a chunk closes at every byte offset that is a token
boundary on *both* sides, i.e. the chunk boundaries are the intersection of the two ``cum`` sets.
The walk finds it in one linear pass by always advancing the side that is behind::

    student  |Hello| wor|ld|        cum_s = 0 5 9 11
    teacher  |Hel|lo| world|        cum_t = 0 3 5 11

    step  s_end  t_end   action
    1       5      3     t behind -> take "lo"
    2       5      5     equal    -> close chunk s[0:1] ~ t[0:2]   ("Hello")
    3       9     11     s behind -> take "ld"
    4      11     11     equal    -> close chunk s[1:3] ~ t[2:3]   (" world")
    shared boundaries {0, 5, 11} = {0, 5, 9, 11} & {0, 3, 5, 11}

The streams may differ (NFC on one side only, ``<unk>``, lower-casing, truncation), so the walk
tracks ``d`` (teacher offset = student offset + d) and a *horizon*: the first student offset where
``s[p] != t[p + d]``, scanned once per ``d`` (amortised linear). A chunk ending before the
horizon is byte-equal, hence exact. A chunk crossing it starts a repair: ``_resync`` searches a
small window after the mismatch (64 bytes, widened x4 up to ``max_window``) for the cheapest pair
of token boundaries where the streams agree again for ``resync_bytes`` bytes; the tokens up to it
form one non-exact chunk and the walk resumes exactly from there with the new ``d``.

Zero-byte special tokens (BOS/EOS/PAD/CONTROL) met at a shared boundary are paired by
``special_key`` (1:1 exact chunks) or listed unaligned, so a one-sided BOS shifts nothing. A
tokenizer's dummy-prefix space (SentencePiece ``▁`` on the first word) is dropped (``skip``) when
the other side has no space there. When one stream ends inside the other, the straddling tokens
form a non-exact chunk and the longer side's rest is unaligned (TRUNCATED_TAIL). A resync needs
``resync_bytes`` of agreement or both streams ending together: one stream's end is no agreement.

Positions, not bytes alone: the walk keeps ``base``, the offset d at which both sides stand at
the same place of the text, moved only by what it can account for (dummy-prefix skips, a special
token parsed from its literal string on one side that the other side spells, an ``<unk>``, a
repair that skips about as much on both sides, as a normaliser does). A chunk is exact only at
d == base; after a lopsided resync (a repeated string further on) nothing is exact. With a
``-lossy`` table these are still bytes, not proven text spans: where the text is known,
``text.py`` aligns by original-text positions (``Aligner.align_text``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Mirrors tables.Role and aligner.UnalignedReason (numba needs plain ints).
TEXT, BOS, EOS, PAD, UNK, CONTROL = 0, 1, 2, 3, 4, 5
R_SPECIAL_UNPAIRED, R_TRUNCATED_TAIL, R_UNK, R_PAD = 1, 2, 3, 4  # 5 retired (was DIVERGED)
SPACE = 32


@njit(cache=True)
def _is_special(r):
    return r == BOS or r == EOS or r == PAD or r == CONTROL


@njit(cache=True)
def gather(ids, offsets, lengths, buf):
    """Byte stream of ``ids`` and its cumulative offsets ``cum`` [n+1]."""
    n = ids.shape[0]
    cum = np.empty(n + 1, np.int64)
    cum[0] = 0
    for k in range(n):
        cum[k + 1] = cum[k] + lengths[ids[k]]
    out = np.empty(cum[n], np.uint8)
    for k in range(n):
        o = offsets[ids[k]]
        p = cum[k]
        for x in range(cum[k + 1] - p):
            out[p + x] = buf[o + x]
    return cum, out


@njit(cache=True)
def _horizon(sb, tb, p, d):
    """First student offset >= p where the streams (shifted by d) differ or one ends."""
    ls = sb.shape[0]
    lt = tb.shape[0]
    while p < ls and p + d < lt and sb[p] == tb[p + d]:
        p += 1
    return p


@njit(cache=True)
def _agree(sb, tb, a, b, nbytes):
    """The streams agree for ``nbytes`` from (a, b), or agree up to the end of *both*. One side
    ending early is no agreement: comparing zero bytes there once "resynced" at the end and
    dropped the other side's real text as a truncated tail (issue 11, case 2)."""
    k = min(nbytes, sb.shape[0] - a, tb.shape[0] - b)
    if k < nbytes and not (a + k == sb.shape[0] and b + k == tb.shape[0]):
        return False
    for x in range(k):
        if sb[a + x] != tb[b + x]:
            return False
    return True


@njit(cache=True)
def _resync(s_cum, t_cum, sb, tb, i, j, i_end, j_end, h, ht, nbytes, max_window):
    """Cheapest boundary pair (i1 > i, j1 > j) at/after the mismatch (h, ht) where the streams
    agree again. Cost = bytes skipped on both sides, ties to the more balanced pair. (-1, -1)
    when none lies within ``max_window`` bytes."""
    ia = max(i + 1, np.searchsorted(s_cum[: i_end + 1], h))
    jb = max(j + 1, np.searchsorted(t_cum[: j_end + 1], ht))
    w = 64
    while True:
        best = -1
        best_max = -1
        bi = -1
        bj = -1
        i1 = ia
        while i1 <= i_end and s_cum[i1] - h <= w:
            da = s_cum[i1] - h
            if best >= 0 and da > best:
                break
            j1 = jb
            while j1 <= j_end and t_cum[j1] - ht <= w:
                db = t_cum[j1] - ht
                c = da + db
                if best >= 0 and (c > best or (c == best and max(da, db) >= best_max)):
                    break
                if _agree(sb, tb, s_cum[i1], t_cum[j1], nbytes):
                    best = c
                    best_max = max(da, db)
                    bi = i1
                    bj = j1
                    break  # larger j1 only costs more
                j1 += 1
            i1 += 1
        if bi >= 0:
            return bi, bj
        everything = s_cum[i_end] - h <= w and t_cum[j_end] - ht <= w
        if w >= max_window or everything:
            return -1, -1
        w *= 4


@njit(cache=True)
def _unpaired(role):
    return R_PAD if role == PAD else R_SPECIAL_UNPAIRED


@njit(cache=True)
def _tail_reason(role):
    if role == TEXT:
        return R_TRUNCATED_TAIL
    if role == UNK:
        return R_UNK
    return _unpaired(role)


@njit(cache=True)
def _lit_at(tid, loff, llen, lbuf, stream, p):
    """The literal string of special ``tid`` is written in ``stream`` at byte ``p``."""
    ln = llen[tid]
    if ln == 0 or p + ln > stream.shape[0]:
        return False
    o = loff[tid]
    for x in range(ln):
        if stream[p + x] != lbuf[o + x]:
            return False
    return True


@njit(cache=True)
def _lit_in(tid, loff, llen, lbuf, stream, lo, hi):
    """The literal string of special ``tid`` is written in ``stream[lo:hi]``."""
    for p in range(lo, hi - llen[tid] + 1):
        if _lit_at(tid, loff, llen, lbuf, stream, p):
            return True
    return False


@njit(cache=True)
def _lit_sum(ids, lo, hi, role, llen):
    """Literal bytes of the special tokens in ids[lo:hi] (their strings in the text)."""
    out = 0
    for k in range(lo, hi):
        if _is_special(role[ids[k]]):
            out += llen[ids[k]]
    return out


@njit(cache=True)
def _contains(keys, ids, lo, hi, key):
    for k in range(lo, hi):
        if keys[ids[k]] == key:
            return True
    return False


@njit(cache=True)
def _spelled(ids, k0, k1, loff, llen, lbuf, stream, p0, cum, j0, j1, need):
    """A special-token string written in the text: the literals of ``ids[k0:k]`` (k <= k1) spell
    ``stream[p0:cum[jj]]`` for an other-side boundary jj in (j0, j1]. Returns the first (k, jj),
    or (-1, -1); with ``need`` >= 0 only jj == need counts (the other side's text end)."""
    q = p0
    for k in range(k0, k1):
        ln = llen[ids[k]]
        if ln == 0:
            return -1, -1
        o = loff[ids[k]]
        for x in range(ln):
            if q + x >= stream.shape[0] or stream[q + x] != lbuf[o + x]:
                return -1, -1
        q += ln
        jj = np.searchsorted(cum[j0 + 1 : j1 + 1], q) + j0 + 1
        if jj <= j1 and cum[jj] == q and (need < 0 or jj == need):
            return k + 1, jj
    return -1, -1


@njit(cache=True)
def align_kernel(
    s_ids, s_off, s_len, s_buf, s_role, s_key, s_dummy, s_loff, s_llen,
    t_ids, t_off, t_len, t_buf, t_role, t_key, t_dummy, t_loff, t_llen,
    nbytes, max_window, lossless,
):  # fmt: skip
    """Align two id sequences. Returns (chunks [K,5]: s0,s1,t0,t1,exact; s_un [U,2]: idx,reason;
    t_un; s_skip, t_skip: uint8 per token, leading bytes that are not text; stats [3]: repairs,
    dummy-prefix skips, give-ups)."""
    n = s_ids.shape[0]
    m = t_ids.shape[0]
    s_cum, sb = gather(s_ids, s_off, s_len, s_buf)
    t_cum, tb = gather(t_ids, t_off, t_len, t_buf)
    ls = sb.shape[0]
    lt = tb.shape[0]
    # The walk treats the end of the last *text* token as the end of a side, so trailing
    # specials are paired at the final shared boundary or listed, never swallowed by a chunk.
    s_end = n
    while s_end > 0 and _is_special(s_role[s_ids[s_end - 1]]):
        s_end -= 1
    t_end = m
    while t_end > 0 and _is_special(t_role[t_ids[t_end - 1]]):
        t_end -= 1
    chunks = np.empty((min(n, m) + 1, 5), np.int32)
    s_un = np.empty((n, 2), np.int32)
    t_un = np.empty((m, 2), np.int32)
    s_skip = np.zeros(n, np.uint8)
    t_skip = np.zeros(m, np.uint8)
    stats = np.zeros(3, np.int64)
    nk = 0
    us = 0
    ut = 0
    i = 0
    j = 0
    fresh_s = True
    fresh_t = True
    hz = -1
    hz_d = 0
    # Positions, not bytes alone: ``base`` is the offset d at which both sides stand at the same
    # position of the text (moved only by what is accounted for: dummy-prefix skips, literal
    # special strings, an <unk>'s text). A chunk is exact only at d == base; a repair that shifts
    # d otherwise leaves what follows unproven (a repeated substring further on, issue 11 case 3).
    base = 0
    while i < n and j < m:
        rs = s_role[s_ids[i]]
        rt = t_role[t_ids[j]]
        if _is_special(rs) or _is_special(rt):
            # A run of zero-byte specials at a shared boundary: pair equal keys in order. On a
            # mismatch skip the token whose key the other run lacks (both when unclear), which
            # is symmetric in the two sides.
            i2 = i
            while i2 < n and _is_special(s_role[s_ids[i2]]):
                i2 += 1
            j2 = j
            while j2 < m and _is_special(t_role[t_ids[j2]]):
                j2 += 1
            # A segment starts after a special on either side: a teacher that lost the EOS
            # between two separately tokenized documents still has the second one's dummy space.
            fresh_s = True
            fresh_t = True
            # A special parsed from a literal string ("<|endoftext|>" in a document) on one side
            # only: the other side spells it as text. Pair them as one non-exact chunk, so the
            # byte positions after it stay in step (no repair, no truncated tail).
            if j2 == j and j < t_end:
                k, jj = _spelled(s_ids, i, i2, s_loff, s_llen, s_buf, tb, t_cum[j], t_cum,
                                 j, t_end, -1)
                if k > 0:
                    chunks[nk, 0] = i
                    chunks[nk, 1] = k
                    chunks[nk, 2] = j
                    chunks[nk, 3] = jj
                    chunks[nk, 4] = 0
                    nk += 1
                    base += t_cum[jj] - t_cum[j]
                    i = k
                    j = jj
                    continue
            if i2 == i and i < s_end:
                k, ii = _spelled(t_ids, j, j2, t_loff, t_llen, t_buf, sb, s_cum[i], s_cum,
                                 i, s_end, -1)
                if k > 0:
                    chunks[nk, 0] = i
                    chunks[nk, 1] = ii
                    chunks[nk, 2] = j
                    chunks[nk, 3] = k
                    chunks[nk, 4] = 0
                    nk += 1
                    base -= s_cum[ii] - s_cum[i]
                    i = ii
                    j = k
                    continue
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
                s_later = _contains(t_key, t_ids, j + 1, j2, ks)
                t_later = _contains(s_key, s_ids, i + 1, i2, kt)
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
            # Left over on one side: a special added by its tokenizer (not in the text), or one
            # parsed from its string where the other side spells it mid-token: then that string
            # is text the positions must count.
            acc = np.int64(0)
            while i < i2:
                s_un[us, 0] = i
                s_un[us, 1] = _unpaired(s_role[s_ids[i]])
                if j >= j2 and j < m and _lit_at(s_ids[i], s_loff, s_llen, s_buf, tb, t_cum[j] + acc):
                    acc += s_llen[s_ids[i]]
                    base += s_llen[s_ids[i]]
                us += 1
                i += 1
            acc = np.int64(0)
            while j < j2:
                t_un[ut, 0] = j
                t_un[ut, 1] = _unpaired(t_role[t_ids[j]])
                if i >= i2 and i < n and _lit_at(t_ids[j], t_loff, t_llen, t_buf, sb, s_cum[i] + acc):
                    acc += t_llen[t_ids[j]]
                    base -= t_llen[t_ids[j]]
                ut += 1
                j += 1
            continue
        if i >= s_end or j >= t_end:
            break
        ps = s_cum[i]
        pt = t_cum[j]
        # Dummy prefix: a space the tokenizer prepended to the first word of a segment. Only
        # dropped where the other side has no space, so a real leading space still aligns.
        if fresh_s and s_dummy and s_len[s_ids[i]] > 0 and sb[ps] == SPACE:
            if pt >= lt or tb[pt] != SPACE:
                ps += 1
                s_skip[i] = 1
                stats[1] += 1
                base -= 1
        elif fresh_t and t_dummy and t_len[t_ids[j]] > 0 and tb[pt] == SPACE:
            if ps >= ls or sb[ps] != SPACE:
                pt += 1
                t_skip[j] = 1
                stats[1] += 1
                base += 1
        fresh_s = False
        fresh_t = False
        d = pt - ps
        if d != hz_d or ps >= hz:
            hz = _horizon(sb, tb, ps, d)
            hz_d = d
        # Walk one chunk: advance the side that is behind until both end at the same offset.
        i1 = i + 1
        j1 = j + 1
        clean = s_role[s_ids[i]] != UNK and t_role[t_ids[j]] != UNK and d == base
        x = s_cum[i1] + d - t_cum[j1]
        while x != 0:
            if x < 0:
                if i1 >= s_end:
                    break
                r = s_role[s_ids[i1]]
                clean = clean and r == TEXT  # <unk> or a special inside text: not exact
                i1 += 1
            else:
                if j1 >= t_end:
                    break
                r = t_role[t_ids[j1]]
                clean = clean and r == TEXT
                j1 += 1
            x = s_cum[i1] + d - t_cum[j1]
        if x == 0 and s_cum[i1] <= hz:
            chunks[nk, 0] = i
            chunks[nk, 1] = i1
            chunks[nk, 2] = j
            chunks[nk, 3] = j1
            chunks[nk, 4] = 1 if clean else 0
            nk += 1
            i = i1
            j = j1
            continue
        if x != 0 and hz >= ls and hz + d < t_cum[t_end]:
            # The student's text ended but its trailing specials spell the teacher's rest: a
            # literal special string at the end of the text, not a truncation.
            k, jj = _spelled(s_ids, s_end, n, s_loff, s_llen, s_buf, tb, hz + d, t_cum,
                             j, t_end, t_end)
            if k > 0:
                chunks[nk, 0] = i
                chunks[nk, 1] = k
                chunks[nk, 2] = j
                chunks[nk, 3] = t_end
                chunks[nk, 4] = 0
                nk += 1
                i = k
                j = t_end
                continue
        if x != 0 and hz + d >= lt and hz < s_cum[s_end]:
            k, ii = _spelled(t_ids, t_end, m, t_loff, t_llen, t_buf, sb, hz, s_cum,
                             i, s_end, s_end)
            if k > 0:
                chunks[nk, 0] = i
                chunks[nk, 1] = s_end
                chunks[nk, 2] = j
                chunks[nk, 3] = k
                chunks[nk, 4] = 0
                nk += 1
                i = s_end
                j = k
                continue
        if x != 0 and (hz >= ls or hz + d >= lt):
            # One stream ended inside this chunk and everything before agreed: truncation.
            chunks[nk, 0] = i
            chunks[nk, 1] = i1
            chunks[nk, 2] = j
            chunks[nk, 3] = j1
            chunks[nk, 4] = 0
            nk += 1
            i = i1
            j = j1
            break
        stats[0] += 1
        bi, bj = _resync(s_cum, t_cum, sb, tb, i, j, s_end, t_end, hz, hz + d, nbytes, max_window)
        if bi < 0:  # nothing agrees within the window: the rest is one non-exact chunk
            stats[2] += 1
            bi = s_end
            bj = t_end
        # Where the text stands after the repair: an <unk> inside stands for whatever bytes the
        # other side holds there; special strings parsed on one side (zero bytes) are text the
        # other side spelled, also in a special run right after the repair (absorbed into it).
        unk = _contains(s_role, s_ids, i, bi, UNK) or _contains(t_role, t_ids, j, bj, UNK)
        base += _lit_sum(s_ids, i, bi, s_role, s_llen) - _lit_sum(t_ids, j, bj, t_role, t_llen)
        nd = t_cum[bj] - s_cum[bi] if bi < n and bj < m else base
        while nd > base and bi < n and _is_special(s_role[s_ids[bi]]) and s_llen[s_ids[bi]] > 0 \
                and s_llen[s_ids[bi]] <= nd - base \
                and _lit_in(s_ids[bi], s_loff, s_llen, s_buf, tb, t_cum[j], t_cum[bj]):
            base += s_llen[s_ids[bi]]
            bi += 1
        while nd < base and bj < m and _is_special(t_role[t_ids[bj]]) and t_llen[t_ids[bj]] > 0 \
                and t_llen[t_ids[bj]] <= base - nd \
                and _lit_in(t_ids[bj], t_loff, t_llen, t_buf, sb, s_cum[i], s_cum[bi]):
            base -= t_llen[t_ids[bj]]
            bj += 1
        # A normaliser rewrites a few characters on one side (NFC é: 2 bytes vs 3; NFKC ½: 2 vs
        # 5), so both sides skip about as much after the mismatch: that shift is accepted. One
        # side skipping far more than the other is a resync onto a repeated string elsewhere
        # (case 3): d is left unaccounted and what follows is not exact.
        da = s_cum[bi] - hz
        db = t_cum[bj] - (hz + d)
        if unk or 2 * abs(nd - base) <= min(da, db) + 4:
            base = nd
        chunks[nk, 0] = i
        chunks[nk, 1] = bi
        chunks[nk, 2] = j
        chunks[nk, 3] = bj
        chunks[nk, 4] = 0
        nk += 1
        i = bi
        j = bj
    for k in range(i, n):
        s_un[us, 0] = k
        s_un[us, 1] = _tail_reason(s_role[s_ids[k]])
        us += 1
    for k in range(j, m):
        t_un[ut, 0] = k
        t_un[ut, 1] = _tail_reason(t_role[t_ids[k]])
        ut += 1
    return chunks[:nk], s_un[:us], t_un[:ut], s_skip, t_skip, stats


@njit(cache=True)
def _next_byte(ids, off, lens, buf, skip, a, oa, end):
    """Advance cursor (token a, byte oa) past exhausted tokens; returns (a, oa)."""
    while a < end and oa >= lens[ids[a]]:
        a += 1
        oa = np.int64(skip[a]) if a < end else np.int64(0)
    return a, oa


@njit(cache=True)
def verify_exact(chunks, s_ids, s_off, s_len, s_buf, s_skip, t_ids, t_off, t_len, t_buf, t_skip):
    """Re-check every exact chunk byte by byte straight from the tables (independent of the
    gathered streams the walk used). Returns the indices of chunks that fail."""
    bad = np.empty(chunks.shape[0], np.int64)
    nb = 0
    for c in range(chunks.shape[0]):
        if chunks[c, 4] == 0:
            continue
        s0 = np.int64(chunks[c, 0])
        s1 = np.int64(chunks[c, 1])
        t0 = np.int64(chunks[c, 2])
        t1 = np.int64(chunks[c, 3])
        a, oa = _next_byte(s_ids, s_off, s_len, s_buf, s_skip, s0, np.int64(s_skip[s0]), s1)
        b, ob = _next_byte(t_ids, t_off, t_len, t_buf, t_skip, t0, np.int64(t_skip[t0]), t1)
        ok = True
        while a < s1 and b < t1:
            if s_buf[s_off[s_ids[a]] + oa] != t_buf[t_off[t_ids[b]] + ob]:
                ok = False
                break
            a, oa = _next_byte(s_ids, s_off, s_len, s_buf, s_skip, a, oa + 1, s1)
            b, ob = _next_byte(t_ids, t_off, t_len, t_buf, t_skip, b, ob + 1, t1)
        if not ok or a < s1 or b < t1:
            bad[nb] = c
            nb += 1
    return bad[:nb]


@njit(cache=True)
def metrics_kernel(chunks, s_ids, s_len, s_skip, s_un, t_ids, t_len, t_skip, t_un, max_comb):
    """[exact chunks, 1:1 chunks, student tokens in chunks, teacher tokens in chunks, chunks
    longer than max_comb on a side, student/teacher unaligned bytes, student/teacher bytes in
    non-exact chunks]."""
    out = np.zeros(9, np.int64)
    for c in range(chunks.shape[0]):
        ns = chunks[c, 1] - chunks[c, 0]
        nt = chunks[c, 3] - chunks[c, 2]
        out[0] += chunks[c, 4]
        if ns == 1 and nt == 1:
            out[1] += 1
        out[2] += ns
        out[3] += nt
        if ns > max_comb or nt > max_comb:
            out[4] += 1
        if chunks[c, 4] == 0:
            for k in range(chunks[c, 0], chunks[c, 1]):
                out[7] += s_len[s_ids[k]] - s_skip[k]
            for k in range(chunks[c, 2], chunks[c, 3]):
                out[8] += t_len[t_ids[k]] - t_skip[k]
    for u in range(s_un.shape[0]):
        out[5] += s_len[s_ids[s_un[u, 0]]]
    for u in range(t_un.shape[0]):
        out[6] += t_len[t_ids[t_un[u, 0]]]
    return out
