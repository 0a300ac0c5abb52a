"""Helpers shared by the alignment benchmarks: packed samples, canonical token bytes, timing.

Nothing here imports ``xtok_stream.align``: the shared-boundary bound is computed independently
of the aligner under test, from each tokenizer's own token strings.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev.parquet"

# Both sides' EOS map to this (invalid UTF-8, so no text can produce it): an EOS pair is one
# shared unit for the boundary bound.
EOS_BYTES = b"\xff\xfe"


def single_thread() -> None:
    """Pin every library we use to one thread (call before importing numba / tokenizers)."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"  # HF tokenizers' batch encoders use rayon
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # numba absent or already initialised with fewer threads
        pass


# ---------------------------------------------------------------------------------------------
# canonical bytes of tokens


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable-char table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}


def tokenizer_family(tok: Any) -> str:
    """``"bytelevel"`` or ``"sentencepiece"`` (Metaspace ``▁`` + ``<0xNN>`` byte fallback)."""
    decoder = json.loads(tok.backend_tokenizer.to_str()).get("decoder") or {}
    text = json.dumps(decoder)
    if '"ByteLevel"' in text:
        return "bytelevel"
    if "ByteFallback" in text or "\\u2581" in text or "▁" in text:
        return "sentencepiece"
    raise ValueError(f"unknown tokenizer family, decoder={text[:200]}")


def _token_bytes(token: str, family: str) -> bytes:
    if family == "bytelevel":
        try:
            return bytes(_UNICODE_TO_BYTE[c] for c in token)
        except KeyError:  # an added token written as plain text
            return token.encode("utf-8")
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return bytes([int(token[3:5], 16)])
    return token.replace("▁", " ").encode("utf-8")


@lru_cache(maxsize=8)
def _vocab_bytes_cached(key: int, tok: Any) -> tuple[list[bytes], np.ndarray]:
    family = tokenizer_family(tok)
    n = len(tok)
    pieces = tok.convert_ids_to_tokens(list(range(n)))
    out = [_token_bytes(p or "", family) for p in pieces]
    special = set(tok.all_special_ids)
    for i in special:
        if i < n:
            out[i] = (pieces[i] or "").encode("utf-8")
    if tok.eos_token_id is not None:
        out[tok.eos_token_id] = EOS_BYTES
    lens = np.fromiter((len(b) for b in out), dtype=np.int64, count=n)
    return out, lens


def vocab_bytes(tok: Any) -> tuple[list[bytes], np.ndarray]:
    """Per token id: its canonical bytes (EOS -> ``EOS_BYTES``) and their lengths."""
    return _vocab_bytes_cached(id(tok), tok)


def has_dummy_prefix(tok: Any) -> bool:
    """SentencePiece Metaspace with ``prepend_scheme`` first/always adds a ``▁`` to a text that
    does not start with a space; that byte is not in the text."""
    pre = json.loads(tok.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    return '"prepend_scheme": "first"' in json.dumps(pre) or '"prepend_scheme": "always"' in json.dumps(pre)


# ---------------------------------------------------------------------------------------------
# packed samples


@dataclass
class Sample:
    """One packed sample: ``seq_len`` student ids, their text parts (split at EOS) and the
    teacher ids of the same text (parts joined with the teacher EOS)."""

    student_ids: np.ndarray
    parts: list[str]  # decoded text between student EOS ids (EOS itself excluded)
    teacher_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def load_corpus_texts(path: Path, seed: int = 0) -> list[str]:
    """Texts of the corpus in a fixed seed-shuffled order (mixes languages and kinds)."""
    import pyarrow.parquet as pq

    texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order]


BUILTIN_TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 3
    + "Tokenizers disagree about where words end, so cross-tokenizer distillation must align them.",
    "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
    "print([fib(i) for i in range(10)])  # 0 1 1 2 3 5 8 13 21 34\n",
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Straße, Übung — naïve café.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "敏捷的棕色狐狸跳过了懒狗。机器学习模型需要大量数据。",
    "L'élève a déjà répondu: « Ça va très bien, merci ! » 🙂  tabs\tand  double  spaces.",
]


def build_samples(
    student: Any, texts: Sequence[str], n_samples: int, seq_len: int
) -> list[Sample]:
    """Student-tokenize ``texts`` in order, join with the student EOS, cut ``seq_len`` windows.

    Cycles over ``texts`` if they are too short (the built-in smoke texts are)."""
    eos = student.eos_token_id
    need = n_samples * seq_len
    ids: list[int] = []
    k = 0
    while len(ids) < need:
        text = texts[k % len(texts)]
        k += 1
        ids.extend(student.encode(text, add_special_tokens=False))
        ids.append(eos)
    arr = np.asarray(ids[:need], dtype=np.int64).reshape(n_samples, seq_len)
    out = []
    for row in arr:
        cuts = np.flatnonzero(row == eos)
        parts, start = [], 0
        for c in list(cuts) + [len(row)]:
            parts.append(student.decode(row[start:c].tolist(), skip_special_tokens=False))
            start = c + 1
        out.append(Sample(student_ids=row, parts=parts))
    return out


def encode_parts(tok: Any, parts: Sequence[str]) -> np.ndarray:
    """Encode text parts with ``tok`` (no specials) and join them with its EOS id."""
    eos = tok.eos_token_id
    ids: list[int] = []
    for i, part in enumerate(parts):
        if i:
            ids.append(eos)
        if part:
            ids.extend(tok.encode(part, add_special_tokens=False))
    return np.asarray(ids, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# the shared-boundary bound


def _split_at(ids: np.ndarray, eos: int) -> list[np.ndarray]:
    cuts = np.flatnonzero(ids == eos)
    return np.split(ids, cuts + 1) if len(cuts) else [ids]


def _part_bytes(vb: list[bytes], ids: np.ndarray, eos: int) -> bytes:
    return b"".join(vb[i] for i in ids.tolist())


def shared_boundaries(
    student: Any, teacher: Any, s_ids: np.ndarray, t_ids: np.ndarray, parts: Sequence[str]
) -> int:
    """Positions where both tokenizations have a token boundary at the same byte of the text.

    Per EOS-separated part (EOS is a shared unit and counts as one boundary): cumulative
    canonical byte offsets of both sides, intersected. The teacher's SentencePiece dummy-prefix
    space is removed. Where a sample cut a UTF-8 character the student bytes and the decoded
    text differ at the part's edge; offsets are then matched from the front up to the common
    prefix and from the back over the common suffix.
    """
    s_vb, _ = vocab_bytes(student)
    t_vb, _ = vocab_bytes(teacher)
    s_eos, t_eos = student.eos_token_id, teacher.eos_token_id
    dummy = has_dummy_prefix(teacher)
    s_parts = [p for p in _split_at(s_ids, s_eos)]
    t_parts = [p for p in _split_at(t_ids, t_eos)]
    if len(s_parts) != len(t_parts):
        raise ValueError(f"EOS count differs: {len(s_parts)} vs {len(t_parts)}")
    total = 0
    for sp, tp, text in zip(s_parts, t_parts, parts):
        has_eos = len(sp) and sp[-1] == s_eos
        if has_eos:
            total += 1  # the EOS pair itself ends at a shared position
            sp, tp = sp[:-1], tp[:-1]
        if not len(sp) or not len(tp):
            continue
        s_len = np.array([len(s_vb[i]) for i in sp.tolist()], dtype=np.int64)
        t_len = np.array([len(t_vb[i]) for i in tp.tolist()], dtype=np.int64)
        bs = b"".join(s_vb[i] for i in sp.tolist())
        bt = b"".join(t_vb[i] for i in tp.tolist())
        if dummy and bt[:1] == b" " and not text.startswith(" "):
            bt = bt[1:]
            t_len[0] -= 1
        s_end = np.cumsum(s_len)
        t_end = np.cumsum(t_len)
        if bs == bt:
            total += len(np.intersect1d(s_end, t_end, assume_unique=False))
            continue
        a = np.frombuffer(bs, np.uint8)
        b = np.frombuffer(bt, np.uint8)
        m = min(len(a), len(b))
        neq = np.flatnonzero(a[:m] != b[:m])
        pre = int(neq[0]) if len(neq) else m
        neq = np.flatnonzero(a[::-1][:m] != b[::-1][:m])
        suf = int(neq[0]) if len(neq) else m
        front = np.intersect1d(s_end[s_end <= pre], t_end[t_end <= pre])
        shift = len(b) - len(a)
        s_back = s_end[s_end >= len(a) - suf]
        t_back = t_end[t_end >= len(b) - suf] - shift
        back = np.intersect1d(s_back, t_back)
        total += len(np.union1d(front, back))
    return total


# ---------------------------------------------------------------------------------------------
# timing / reporting


def time_call(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time (s) of ``repeat`` calls and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
    }
