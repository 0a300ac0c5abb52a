"""Derive a projection from two vocabularies' canonical bytes, one student row at a time.

The loss compares next-token distributions, so a student token's probability should go to the
teacher token(s) the teacher would emit *first* when producing the same bytes. For each student
token (bytes from :func:`~xtok_stream.align.tables.byte_table`):

1. **Special token** (no bytes): weight 1 to the teacher special with the same pairing key
   (BOS<->BOS, EOS<->EOS, PAD, UNK; a CONTROL token only to one with the same content). None:
   the row stays empty.
2. **Exact match**: the teacher has a token with the same bytes -> weight 1 to it.
3. **Decomposition**: otherwise find the fewest teacher tokens (at most ``max_comb_len``) whose
   bytes concatenate to the student token's bytes. Every such shortest split is taken as equally
   likely, so a first teacher token's weight is the number of shortest splits that start with it.
   Rows are normalised to sum to 1 and cut to the ``top_k`` heaviest first tokens (renormalised).
4. **No split within max_comb_len tokens**: weight 1 to the longest teacher token that is a
   prefix of the student bytes (greedy). No teacher token is a prefix at all: empty row.

Worked example (teacher lacks ``" Hello"``, has ``" Hell" " He" " H" "llo" "ello" "o"``)::

    " Hello" -> shortest splits (2 tokens): " Hell"+"o", " He"+"llo", " H"+"ello"
             -> row {" Hell": 1/3, " He": 1/3, " H": 1/3}

When teacher ids share bytes, the id the tokenizer emits wins: a SentencePiece ``<0xNN>``
byte-fallback piece only when no other piece has its byte, otherwise the lowest id.

The build streams over student ids (memory: the teacher's ``bytes -> id`` dict plus the output
COO); the DP per token is O(len x min(len, longest teacher token)) dict probes, and most rows
are exact matches that need one probe.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from ..align.tables import Role, byte_table, resolve_tokenizer
from ..errors import ConfigError
from .matrix import Projection

_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def _teacher_index(tok: Any, table) -> tuple[dict[bytes, int], dict[int, int]]:
    """``bytes -> teacher id`` for text tokens, ``special_key -> teacher id`` for specials."""
    buf = table.buf.tobytes()
    offs, lens = table.offsets.tolist(), table.lengths.tolist()
    ids = [i for i in range(table.vocab_size) if lens[i] > 0]
    fallback: set[int] = set()
    if table.family == "sentencepiece":
        strings = tok.convert_ids_to_tokens(ids)
        fallback = {i for i, s in zip(ids, strings) if s and _BYTE_FALLBACK.match(s)}
    # Insert the least preferred first so the preferred id overwrites it.
    ordered = sorted(ids, key=lambda i: (i not in fallback, -i))
    by_bytes = {buf[offs[i]: offs[i] + lens[i]]: i for i in ordered}
    specials: dict[int, int] = {}
    for i in np.flatnonzero(table.special_key).tolist():
        specials.setdefault(int(table.special_key[i]), i)
    return by_bytes, specials


def _first_tokens(b: bytes, by_bytes: dict, max_len: int, max_comb: int):
    """``([(teacher_id, weight, prefix_len)], rule)`` for a student token with no exact match
    (rule 3 "decomposed" or 4 "greedy"; ``[]`` when no teacher token is a prefix)."""
    n = len(b)
    inf = max_comb + 1
    best = [inf] * (n + 1)  # fewest teacher tokens covering b[pos:], capped
    ways = [0] * (n + 1)  # how many such shortest covers
    best[n], ways[n] = 0, 1
    for pos in range(n - 1, 0, -1):
        bp, wp = inf, 0
        for ln in range(1, min(max_len, n - pos) + 1):
            c = best[pos + ln] + 1
            if c > bp or c >= inf or b[pos: pos + ln] not in by_bytes:
                continue
            if c < bp:
                bp, wp = c, ways[pos + ln]
            else:
                wp += ways[pos + ln]
        best[pos], ways[pos] = bp, wp
    cands = []
    for ln in range(1, min(max_len, n) + 1):
        tid = by_bytes.get(b[:ln])
        if tid is not None:
            cands.append((best[ln] + 1, ln, tid))
    if not cands:
        return [], "empty"
    m = min(c[0] for c in cands)
    if m > max_comb:  # rule 4: greedy longest prefix
        _, ln, tid = max(cands, key=lambda c: c[1])
        return [(tid, 1, ln)], "greedy"
    return [(tid, ways[ln], ln) for c, ln, tid in cands if c == m], "decomposed"


def build_projection(student: Any, teacher: Any, *, top_k: int = 10, max_comb_len: int = 4,
                     n_student: int | None = None, n_teacher: int | None = None,
                     progress: bool = True, chunk: int = 8192) -> Projection:
    """Build the student -> teacher projection of two tokenizers (objects or load_tokenizer
    names; see the module docstring for the rule). ``n_student``/``n_teacher`` default to the
    tokenizers' sizes; pass a model's larger (padded) vocabulary size to get empty extra rows.
    ``meta`` of the result holds counts per rule and the build time."""
    if top_k < 1 or max_comb_len < 1:
        raise ConfigError(f"--top-k and --max-comb-len must be >= 1 (got {top_k}, {max_comb_len})")
    t0 = time.perf_counter()
    stok, ttok = resolve_tokenizer(student), resolve_tokenizer(teacher)
    st, tt = byte_table(stok), byte_table(ttok)
    n_s = st.vocab_size if n_student is None else int(n_student)
    n_t = tt.vocab_size if n_teacher is None else int(n_teacher)
    if n_s < st.vocab_size or n_t < tt.vocab_size:
        raise ConfigError(f"n_student/n_teacher ({n_s}, {n_t}) are below the tokenizers' "
                          f"vocabulary sizes ({st.vocab_size}, {tt.vocab_size})")
    by_bytes, t_specials = _teacher_index(ttok, tt)
    max_len = max(map(len, by_bytes)) if by_bytes else 0
    sbuf = st.buf.tobytes()
    s_offs, s_lens = st.offsets.tolist(), st.lengths.tolist()
    s_role, s_key = st.role.tolist(), st.special_key.tolist()
    counts = dict(exact=0, decomposed=0, greedy=0, special=0, empty=0)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []

    from tqdm import tqdm

    bar = tqdm(total=st.vocab_size, unit="tok", desc="projection", disable=not progress,
               dynamic_ncols=True)
    try:
        for lo in range(0, st.vocab_size, chunk):
            for s in range(lo, min(lo + chunk, st.vocab_size)):
                ln = s_lens[s]
                if ln == 0:
                    tid = t_specials.get(s_key[s]) if s_role[s] != Role.TEXT else None
                    if tid is None:
                        counts["empty"] += 1
                    else:
                        counts["special"] += 1
                        rows.append(s), cols.append(tid), vals.append(1.0)
                    continue
                b = sbuf[s_offs[s]: s_offs[s] + ln]
                tid = by_bytes.get(b)
                if tid is not None:
                    counts["exact"] += 1
                    rows.append(s), cols.append(tid), vals.append(1.0)
                    continue
                cand, rule = _first_tokens(b, by_bytes, max_len, max_comb_len)
                counts[rule] += 1
                # Heaviest first; ties: the longer (more specific) teacher token first.
                cand = sorted(cand, key=lambda c: (-c[1], -c[2]))[:top_k]
                total = float(sum(c[1] for c in cand))
                for tid, w, _ in cand:
                    rows.append(s), cols.append(tid), vals.append(w / total)
            bar.update(min(lo + chunk, st.vocab_size) - lo)
    finally:
        bar.close()
    meta = {f"rows_{k}": v for k, v in counts.items()}
    meta["build_seconds"] = round(time.perf_counter() - t0, 3)
    return Projection.from_coo(np.array(rows, np.int64), np.array(cols, np.int64),
                               np.array(vals, np.float32), n_s, n_t, meta=meta)
