"""Per-tokenizer tables ``token id -> canonical bytes``, built once per process.

The aligner never decodes strings: it compares the UTF-8 bytes each token stands for. A
:class:`ByteTable` stores them as flat numpy arrays (``offsets``/``lengths`` into one ``buf``, plus
a ``role`` and a pairing ``special_key`` per id) so numba kernels can read them directly.

How each family's token strings map to bytes:

* **Byte-level BPE** (GPT-2 style: Qwen2, DeepSeek, Llama-3): every vocabulary string is written in
  the 256-character alphabet of GPT-2's ``bytes_to_unicode`` (``Ġ`` = 0x20, ``Ċ`` = 0x0A, ``ĉ`` =
  0x09, printable Latin-1 maps to itself, ...). Each character is one byte; we invert the alphabet
  with one ``str.translate`` over the joined vocabulary and ``encode('latin-1')``.
* **SentencePiece** (Mistral, Llama-2): ``▁`` (U+2581) is a space, ``<0xNN>`` byte-fallback pieces
  are the single byte 0xNN, other pieces are their UTF-8. A Metaspace pre-tokenizer with
  ``prepend_scheme`` ``first``/``always`` (or a ``Prepend('▁')`` normalizer) adds a *dummy prefix*
  space that is not in the text; the table keeps the ``▁`` as a space byte and sets
  ``dummy_prefix=True``, and the aligner drops that byte where the other side shows it is not text
  (see ``core.py``). Byte-level BPE with ``add_prefix_space=True`` is flagged the same way.
* **WordPiece** (``##`` continues a word; other pieces start one, read as a leading space) and
  **end-of-word BPE** (``word</w>``, CLIP-style: the suffix reads as a trailing space).
* **Other models**: the UTF-8 of the vocabulary string.

The family comes from the tokenizer's own parsed components (model type, pre-tokenizer,
normaliser, decoder), never from substring tests on serialized JSON. Each table is then
*verified*: the tokenizer's ids for :data:`PROBE` must spell the probe's UTF-8 through the table.
A table that does not (normalisers such as NFKC or lower-casing, ``<unk>``, dropped spaces) is
kept as a best effort and reported ``<family>-lossy`` (:attr:`ByteTable.mode`): its ids cannot
prove exactness by bytes, so such pairs need text-space alignment (``text.py``).

Added tokens: ``special=True`` ones carry zero text bytes and a role (BOS, EOS, PAD, UNK or CONTROL);
the others are matched on raw text by the tokenizer, so their bytes are their content's UTF-8.
``special_key`` pairs special tokens across tokenizers: BOS/EOS/PAD/UNK pair by role, CONTROL
tokens only with a CONTROL token of the same content.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
import zlib
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import numpy as np

from ..errors import ConfigError


class Role(IntEnum):
    TEXT = 0
    BOS = 1
    EOS = 2
    PAD = 3
    UNK = 4
    CONTROL = 5  # any other special token (chat markers, FIM, placeholders)


@dataclass(frozen=True, eq=False)
class ByteTable:
    """Flat ``token id -> bytes`` table of one tokenizer (see the module docstring)."""

    name: str
    family: str  # "byte_level" | "sentencepiece" | "raw"
    offsets: np.ndarray  # int64 [V]: start of the id's bytes in ``buf`` (not monotone)
    lengths: np.ndarray  # int32 [V]: byte count (0 for special tokens)
    buf: np.ndarray  # uint8: the bytes
    role: np.ndarray  # int8 [V]: Role
    special_key: np.ndarray  # int64 [V]: 0 for text; equal keys pair across tokenizers
    dummy_prefix: bool  # the tokenizer prepends a space that is not in the text
    lossless: bool = True  # verified at build time: ids -> bytes reproduces the probe text
    # int64/int32 [V]: a special token's literal content in ``buf`` ("<|endoftext|>"), 0 for text:
    # the ids-only walk pairs a special with the other side's tokens that spell it (core.py)
    lit_offsets: np.ndarray | None = None
    lit_lengths: np.ndarray | None = None

    @property
    def mode(self) -> str:
        """How ids-only alignment reads this tokenizer: ``<family>`` when verified lossless,
        ``<family>-lossy`` when its bytes are a best effort (normalisers, ``##``, ``</w>``,
        ``<unk>``): there, only text-space alignment (``Aligner.align_text``) proves exactness."""
        return self.family if self.lossless else f"{self.family}-lossy"

    @property
    def vocab_size(self) -> int:
        return int(self.lengths.shape[0])

    def token_bytes(self, token_id: int) -> bytes:
        o = int(self.offsets[token_id])
        return self.buf[o : o + int(self.lengths[token_id])].tobytes()

    def ids_bytes(self, ids, skip=None) -> bytes:
        """Concatenated bytes of ``ids``; ``skip[k]`` leading bytes of token k are left out."""
        out = []
        for k, t in enumerate(np.asarray(ids).tolist()):
            b = self.token_bytes(t)
            out.append(b[int(skip[k]) :] if skip is not None else b)
        return b"".join(out)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte <-> printable-character alphabet."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# str.translate table: byte-level character -> the Latin-1 character of its byte.
_BL_TRANSLATE = {ord(c): b for b, c in _bytes_to_unicode().items()}
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _walk(node: Any):
    """Every dict inside a tokenizer.json component (Sequence nesting included)."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _is_metaspace_replace(n: dict) -> bool:
    # compare the parsed value: ``json.dumps`` escapes "▁" to "\u2581", so a substring test on
    # serialized JSON never matches (issue 11, case 1)
    pat = n.get("pattern")
    return (n.get("type") == "Replace" and n.get("content") == " "
            and isinstance(pat, dict) and pat.get("String") == "▁")


def _family(spec: dict, model: Any = None) -> tuple[str, bool]:
    """(family, dummy_prefix) from the tokenizer's own components: its model, pre-tokenizer,
    normalizer and decoder (parsed objects, never serialized text)."""
    parts = [spec.get(k) for k in ("normalizer", "pre_tokenizer", "decoder")]
    nodes = [n for p in parts for n in _walk(p)]
    types = {n.get("type") for n in nodes}
    if "ByteLevel" in types:
        pre = list(_walk(spec.get("pre_tokenizer")))
        dummy = any(n.get("type") == "ByteLevel" and n.get("add_prefix_space") for n in pre)
        return "byte_level", dummy
    sp_decoder = any(_is_metaspace_replace(n) for n in _walk(spec.get("decoder")))
    if "Metaspace" in types or sp_decoder:
        dummy = False
        for n in nodes:
            if n.get("type") == "Metaspace":
                scheme = n.get("prepend_scheme", "always" if n.get("add_prefix_space") else "never")
                dummy |= scheme in ("first", "always")
            if n.get("type") == "Prepend" and n.get("prepend") == "▁":
                dummy = True
        return "sentencepiece", dummy
    kind = type(model).__name__ if model is not None else ""
    if kind == "WordPiece" or "WordPiece" in types:
        return "wordpiece", False
    if kind == "BPE" and getattr(model, "end_of_word_suffix", None):
        return "bpe_suffix", False
    return "raw", False


# Probe decoded both ways at build time: the table is "lossless" only if the bytes of the ids the
# tokenizer gives for it are the probe's own UTF-8 (a dummy-prefix space allowed in front).
PROBE = ("Hello,  World!\n\tdef f(x):\n    return x_1 + 2  # naïve café Ünïcode\n"
         "日本語のテキスト Привет 😀 ﬁ ½\r\n")


def _utf8_spans(big: str, char_lens: np.ndarray) -> tuple[np.ndarray, np.ndarray, bytes]:
    """UTF-8 of ``big`` and each piece's byte offset/length, without a per-piece loop."""
    buf = big.encode("utf-8", "surrogatepass")
    cps = np.frombuffer(big.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    blen = 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)
    byte_cum = np.concatenate([[0], np.cumsum(blen)])
    char_cum = np.concatenate([[0], np.cumsum(char_lens)])
    starts = byte_cum[char_cum[:-1]]
    return starts.astype(np.int64), (byte_cum[char_cum[1:]] - starts).astype(np.int32), buf


def _id_to_token(backend: Any, vocab: int) -> list[str | None]:
    """Token string per id (None for holes) straight from the Rust tokenizer: the same strings as
    ``convert_ids_to_tokens`` without its per-id Python wrapper (most of a 151k-id build)."""
    return list(map(backend.id_to_token, range(vocab)))


def build_byte_table(tokenizer: Any, name: str | None = None) -> ByteTable:
    """Build the table of an HF fast tokenizer (vectorised: ~0.3 s for 150k ids)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"tokenizer {name or tokenizer!r} is not an HF fast tokenizer")
    # Component states only: the full to_str() JSON of a 150k vocabulary takes ~0.6 s to parse.
    spec = {
        k: json.loads(comp.__getstate__())
        for k in ("normalizer", "pre_tokenizer", "decoder")
        if (comp := getattr(backend, k, None)) is not None
    }
    family, dummy = _family(spec, getattr(backend, "model", None))
    vocab = len(tokenizer)
    tokens = _id_to_token(backend, vocab)
    role = np.zeros(vocab, np.int8)
    key = np.zeros(vocab, np.int64)
    overrides: dict[int, bytes] = {}
    literals: dict[int, bytes] = {}
    special_ids = {
        Role.UNK: tokenizer.unk_token_id,
        Role.BOS: tokenizer.bos_token_id,
        Role.EOS: tokenizer.eos_token_id,
        Role.PAD: tokenizer.pad_token_id,
    }
    for tid, added in tokenizer.added_tokens_decoder.items():
        if tid >= vocab:
            continue
        if not added.special:
            overrides[tid] = added.content.encode("utf-8")
            continue
        overrides[tid] = b""
        literals[tid] = added.content.encode("utf-8")
        r = next((r for r, i in special_ids.items() if i == tid), None)
        if r is None:  # e.g. DeepSeek's <｜▁pad▁｜> is not its pad_token but is a pad
            r = Role.PAD if "pad" in added.content.lower() else Role.CONTROL
        role[tid] = r
        key[tid] = int(r) if r != Role.CONTROL else 16 + zlib.crc32(added.content.encode())
    unk = tokenizer.unk_token_id
    if unk is not None and unk < vocab and role[unk] == Role.TEXT:  # unk not marked special
        role[unk], key[unk], overrides[unk] = Role.UNK, int(Role.UNK), b""
    if unk is not None and unk == tokenizer.eos_token_id and unk < vocab:
        key[unk] = int(Role.EOS)  # a zero-width one is the EOS: it pairs with the other's EOS
    if family == "sentencepiece":
        for tid, tok in enumerate(tokens):
            if tok is not None and tok.startswith("<0x") and tid not in overrides:
                m = _BYTE_FALLBACK.match(tok)
                if m:
                    overrides[tid] = bytes([int(m.group(1), 16)])
    pieces = ["" if (t is None or i in overrides) else t for i, t in enumerate(tokens)]
    if family == "wordpiece":  # "##ing" continues a word; other pieces start one (a space)
        prefix = getattr(backend.model, "continuing_subword_prefix", "##") or "##"
        pieces = [p[len(prefix):] if p.startswith(prefix) else (" " + p if p else p) for p in pieces]
    elif family == "bpe_suffix":  # "word</w>" ends a word: the suffix stands for a space
        suffix = backend.model.end_of_word_suffix
        pieces = [p[: -len(suffix)] + " " if p.endswith(suffix) else p for p in pieces]
    char_lens = np.fromiter(map(len, pieces), dtype=np.int64, count=vocab)
    big = "".join(pieces)
    if family == "byte_level":
        mapped = big.translate(_BL_TRANSLATE)
        try:
            buf = mapped.encode("latin-1")  # one byte per character
            offsets = np.concatenate([[0], np.cumsum(char_lens)[:-1]]).astype(np.int64)
            lengths = char_lens.astype(np.int32)
        except UnicodeEncodeError:  # a piece outside the alphabet: take its UTF-8 instead
            per = [
                p.translate(_BL_TRANSLATE).encode("latin-1")
                if all(ord(c) in _BL_TRANSLATE for c in p)
                else p.encode("utf-8")
                for p in pieces
            ]
            lengths = np.fromiter(map(len, per), dtype=np.int32, count=vocab)
            offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)[:-1]])
            buf = b"".join(per)
    else:
        if family == "sentencepiece":
            big = big.replace("▁", " ")  # same char count, so char_lens stay valid
        offsets, lengths, buf = _utf8_spans(big, char_lens)
    if overrides:  # appended after the vocabulary: offsets need not be monotone
        extra_ids = np.fromiter(overrides.keys(), dtype=np.int64)
        extra = list(overrides.values())
        extra_len = np.fromiter(map(len, extra), dtype=np.int32, count=len(extra))
        offsets[extra_ids] = len(buf) + np.concatenate([[0], np.cumsum(extra_len)[:-1]])
        lengths[extra_ids] = extra_len
        buf = buf + b"".join(extra)
    lit_offsets = np.zeros(vocab, np.int64)
    lit_lengths = np.zeros(vocab, np.int32)
    for tid, content in literals.items():
        lit_offsets[tid], lit_lengths[tid] = len(buf), len(content)
        buf = buf + content
    table = ByteTable(
        name=name or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__,
        family=family,
        offsets=np.ascontiguousarray(offsets, dtype=np.int64),
        lengths=np.ascontiguousarray(lengths, dtype=np.int32),
        buf=np.frombuffer(buf, dtype=np.uint8).copy(),
        role=role,
        special_key=key,
        dummy_prefix=dummy,
        lit_offsets=lit_offsets,
        lit_lengths=lit_lengths,
    )
    return replace(table, lossless=_verify(table, backend))


def _verify(table: ByteTable, backend: Any) -> bool:
    """Decode :data:`PROBE` both ways: the tokenizer's ids through this table must give the
    probe's UTF-8 (a leading dummy-prefix space aside), with no ``<unk>``."""
    ids = backend.encode(PROBE, add_special_tokens=False).ids
    if not ids or any(table.role[i] == Role.UNK for i in ids):
        return False
    got = table.ids_bytes(ids)
    want = PROBE.encode("utf-8")
    return got == want or (table.dummy_prefix and got == b" " + want)


_LOCK = threading.Lock()
_BY_OBJECT: weakref.WeakKeyDictionary[Any, ByteTable] = weakref.WeakKeyDictionary()
_BY_NAME: dict[str, ByteTable] = {}


def resolve_tokenizer(tok: Any) -> Any:
    if isinstance(tok, (str, bytes)) or hasattr(tok, "__fspath__"):
        from ..tokenizers import load_tokenizer

        return load_tokenizer(str(tok))
    return tok


def byte_table(tokenizer: Any) -> ByteTable:
    """The cached :class:`ByteTable` of a tokenizer object or a ``load_tokenizer`` name/path."""
    if isinstance(tokenizer, (str, bytes)) or hasattr(tokenizer, "__fspath__"):
        spec = str(tokenizer)
        with _LOCK:
            if spec in _BY_NAME:
                return _BY_NAME[spec]
        table = byte_table(resolve_tokenizer(spec))
        with _LOCK:
            return _BY_NAME.setdefault(spec, table)
    with _LOCK:
        table = _BY_OBJECT.get(tokenizer)
    if table is None:
        table = build_byte_table(tokenizer)  # outside the lock: builds may run in parallel
        with _LOCK:
            table = _BY_OBJECT.setdefault(tokenizer, table)
    return table
