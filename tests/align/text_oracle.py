"""Oracle for text-space alignment, from the tokenizers' own offsets only (not the aligner's).

A token covers the characters of its ``offset_mapping`` span. A chunk is *truly* exact when
every character one side covers there is covered by the other side in the same chunk, or by no
token of the other side at all (a character that tokenizer does not represent, e.g. WordPiece's
spaces). The bound counts the cut points both sides could share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xtok_stream.align import Role, byte_table


@dataclass
class Encoded:
    """A tokenizer's view of ``text``: ids and char offsets (EOS with zero width after each
    document when ``docs`` are joined)."""

    ids: np.ndarray
    offsets: np.ndarray  # int64 [n, 2], chars


def encode_docs(tok, docs: list[str]) -> tuple[str, Encoded]:
    ids, offs, base = [], [], 0
    eos = tok.eos_token_id
    for doc in docs:
        enc = tok.backend_tokenizer.encode(doc, add_special_tokens=False)
        ids += enc.ids
        offs += [(a + base, b + base) for a, b in enc.offsets]
        base += len(doc)
        if eos is not None:
            ids.append(eos)
            offs.append((base, base))
    return "".join(docs), Encoded(np.array(ids, np.int64), np.array(offs, np.int64).reshape(-1, 2))


def _chunk_of_chars(enc: Encoded, spans: np.ndarray, n_chars: int):
    """Per character: (min, max) chunk id of the tokens covering it (-2 for an unaligned token,
    big for none) and how many characters each chunk's tokens cover."""
    tok_chunk = np.full(len(enc.ids), -2, np.int64)
    for k, (a, b) in enumerate(spans.tolist()):
        tok_chunk[a:b] = k
    lo, hi = enc.offsets[:, 0], enc.offsets[:, 1]
    width = np.maximum(hi - lo, 0)
    chars = np.repeat(lo, width) + (np.arange(width.sum()) - np.repeat(np.cumsum(width) - width, width))
    owner = np.repeat(tok_chunk, width)
    big = np.iinfo(np.int64).max
    cmin = np.full(n_chars, big, np.int64)
    cmax = np.full(n_chars, -big, np.int64)
    np.minimum.at(cmin, chars, owner)
    np.maximum.at(cmax, chars, owner)
    per_chunk = np.bincount(owner[owner >= 0], minlength=len(spans))
    return cmin, cmax, cmin != big, per_chunk


def false_exact(text: str, s: Encoded, t: Encoded, al) -> list[int]:
    """Indices of exact chunks whose two sides cover different original text."""
    n = len(text)
    s_min, s_max, s_any, s_n = _chunk_of_chars(s, al.student_spans, n)
    t_min, t_max, t_any, t_n = _chunk_of_chars(t, al.teacher_spans, n)
    exact = al.exact
    bad = set()
    # a character both sides cover must lie in one and the same chunk on both sides
    both = s_any & t_any
    differ = both & ((s_min != t_min) | (s_max != t_max) | (s_min != s_max) | (t_min != t_max))
    for arr in (s_min, s_max, t_min, t_max):
        ids = arr[differ]
        ids = ids[(ids >= 0) & (ids < len(exact))]
        bad.update(int(k) for k in np.unique(ids) if exact[k])
    # an exact chunk holds text on both sides, or zero-width specials on both
    one_sided = (s_n > 0) != (t_n > 0)
    bad.update(int(k) for k in np.flatnonzero(one_sided & exact))
    return sorted(bad)


def _cut_intervals(enc: Encoded, n_chars: int) -> list[tuple[int, int]]:
    """Each possible cut as the char interval [max end before, min start after]."""
    offs = [(a, b) for a, b in enc.offsets.tolist() if b > a]
    out, run = [], 0
    starts = [a for a, _ in offs] + [n_chars]
    suffix = np.minimum.accumulate(np.array(starts[::-1]))[::-1]
    for k in range(len(offs) + 1):
        lo, hi = run, int(suffix[k])
        if lo <= hi and (not out or out[-1] != (lo, hi)):
            out.append((lo, hi))
        if k < len(offs):
            run = max(run, offs[k][1])
    return out


def text_bound(text: str, s: Encoded, t: Encoded) -> int:
    """Upper bound on the chunks any alignment can close: cut intervals that overlap one on the
    other side, counted on the side with fewer (a wide gap can meet several cuts)."""
    n = len(text)
    si, ti = _cut_intervals(s, n), _cut_intervals(t, n)
    pairs = set()
    j = 0
    for a, b in si:
        while j < len(ti) and ti[j][1] < a:
            j += 1
        k = j
        while k < len(ti) and ti[k][0] <= b:
            pairs.add((a, b, ti[k]))
            k += 1
    return max(0, min(len({p[:2] for p in pairs}), len({p[2] for p in pairs})) - 1)


def spoilers(tok, enc: Encoded) -> int:
    """Tokens no exact chunk may hold: <unk>, and specials parsed from literal text."""
    role = byte_table(tok).role
    ids, offs = enc.ids, enc.offsets
    covering = offs[:, 1] > offs[:, 0]
    return int(np.sum((role[ids] != Role.TEXT) & covering))


def _side_cuts(enc: Encoded, n_chars: int):
    """Valid cuts as (token index, lo, hi): every earlier token ends at or before lo, every later
    one starts at or after hi (zero-width tokens ignored)."""
    offs = enc.offsets.tolist()
    n = len(offs)
    suffix = [n_chars] * (n + 1)
    for k in range(n - 1, -1, -1):
        a, b = offs[k]
        suffix[k] = min(suffix[k + 1], a) if b > a else suffix[k + 1]
    cuts, run = [], 0
    for k in range(n + 1):
        if run <= suffix[k] and (not cuts or (cuts[-1][1], cuts[-1][2]) != (run, suffix[k])):
            cuts.append((k, run, suffix[k]))
        if k < n and offs[k][1] > offs[k][0]:
            run = max(run, offs[k][1])
    return cuts


def exact_bound(text: str, s: Encoded, t: Encoded, s_tok, t_tok) -> int:
    """The text-space shared-boundary bound: chunks between consecutive cuts both sides share
    (overlapping cut intervals, earliest first) that cover text on both sides and hold no token
    an exact chunk may not hold (<unk>, specials parsed from literal text)."""
    n = len(text)
    sc, tc = _side_cuts(s, n), _side_cuts(t, n)
    s_bad = _spoiler_mask(s_tok, s)
    t_bad = _spoiler_mask(t_tok, t)
    s_cov = s.offsets[:, 1] > s.offsets[:, 0]
    t_cov = t.offsets[:, 1] > t.offsets[:, 0]
    shared, i, j = [(0, 0)], 1, 1
    while i < len(sc) and j < len(tc):
        (ki, a1, b1), (kj, a2, b2) = sc[i], tc[j]
        if b1 < a2:
            i += 1
        elif b2 < a1:
            j += 1
        else:
            shared.append((ki, kj))
            i, j = i + 1, j + 1
    count = 0
    for (s0, t0), (s1, t1) in zip(shared, shared[1:]):
        if (s_cov[s0:s1].any() and t_cov[t0:t1].any() and not s_bad[s0:s1].any()
                and not t_bad[t0:t1].any()):
            count += 1
    return count


def _spoiler_mask(tok, enc: Encoded) -> np.ndarray:
    role = byte_table(tok).role
    return (role[enc.ids] != Role.TEXT) & (enc.offsets[:, 1] > enc.offsets[:, 0])


def exact_text_chunks(al, s: Encoded) -> int:
    """Exact chunks that cover text (paired zero-width specials left out)."""
    cov = s.offsets[:, 1] > s.offsets[:, 0]
    return sum(1 for (s0, s1), ex in zip(al.student_spans.tolist(), al.exact.tolist())
               if ex and cov[s0:s1].any())
