"""``pack``: documents -> sequences of exactly ``seq_len`` student tokens.

Each document is tokenized (no special tokens) and followed by the student EOS; sequences are cut
every ``seq_len`` tokens, so a document longer than the space left continues in the next
sequence. No token is dropped or duplicated; only a lane's very last sequence may be short
(padded by the batcher, ``length`` says how much is real)::

    seq_len = 8      doc a: a0 a1 a2        doc b: b0 b1 b2 b3 b4 b5
    seq 0: a0 a1 a2 EOS b0 b1 b2 b3   pieces (a, 0, len(a)) tokens 0-4, (b, 0, c) tokens 4-8
    seq 1: b4 b5 EOS ...              pieces (b, c, len(b)) tokens 0-3, ...

Cursor: the upstream cursor *before* the document being split plus how many of its tokens are
already out (``skip``); or, when the last sequence ended with a whole document, the upstream
cursor after it and ``skip = 0``. Restoring reads that one document again and drops ``skip``
tokens: cost O(one document), not O(position).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, StateError
from ..records import Document, PackedSequence, Piece
from ..state import check_fields, envelope, get_int, nested, within
from ..tokenizers import load_tokenizer


class _OpenDocument:
    """A tokenized document being cut into pieces."""

    __slots__ = ("doc", "ids", "n_text", "done", "before", "_enc")

    def __init__(self, doc: Document, enc: Any, eos: int, before: dict):
        self.doc, self.before, self.done, self._enc = doc, before, 0, enc
        ids = enc.ids  # builds a Python list: once
        n = self.n_text = len(ids)
        # the EOS follows a document's last part only (huge documents come in parts)
        self.ids = np.empty(n + int(doc.last_part), dtype=np.int64)
        self.ids[:n] = ids
        if doc.last_part:
            self.ids[n] = eos

    def char_at(self, t: int) -> int:
        """Character index in the whole document where token ``t`` starts (the end of this
        part's text for the EOS and beyond)."""
        base = self.doc.char_base
        if t == 0:
            return base
        if t >= self.n_text:
            return base + len(self.doc.text)
        # one lookup (building all offsets would cost ~5x the ids); a token that starts inside a
        # character (byte-level BPE) maps to that character's start
        return base + self._enc.token_to_chars(t)[0]


class OpenItemCursor:
    """The cursor both packers (text and chat) keep: the upstream cursor *before* the item
    (document, conversation) being cut up plus how far into it the next sequence starts
    (``skip``: tokens for text, messages for chat), or, between items, the upstream cursor after
    the last one and ``skip = 0``. Here the item is read with the cursor before it, the
    restored ``skip`` is checked against the item it lands in (an edited or foreign state must
    not repeat or drop part of it) and the state is written and checked. Subclasses set
    ``KIND``, ``VERSION``, ``source`` and ``_cur`` (the open item, with ``before``/``done``)."""

    KIND: str
    VERSION: int
    COUNTERS: tuple[str, ...] = ()  # more non-negative integer fields of the state
    source: Any
    _cur: Any = None
    _pending_skip = 0

    def _read(self) -> tuple[Document, dict] | None:
        """The next upstream item and the upstream cursor before it; None at the end."""
        before = self.source.state_dict()
        try:
            return next(self.source), before
        except StopIteration:
            return None
        except StateError as exc:  # a restored cursor found bad at its first read
            raise within("source", exc) from exc

    def _take_skip(self, size: int, key: str, unit: str) -> int:
        """The restored skip for the item just read (of ``size`` ``unit``), checked."""
        skip, self._pending_skip = self._pending_skip, 0
        if skip and skip >= size:
            raise StateError(f"skip: {skip} {unit} of '{key}' already out, but it has {size}: "
                             "the state does not belong to this data or student tokenizer")
        return skip

    def _at_end(self) -> None:
        """The source ended: a restored skip that never found its item is a foreign state."""
        if self._pending_skip:
            raise StateError(f"skip: {self._pending_skip} into an item, but the source has none "
                             "left: the state does not belong to this data")

    def _counters(self) -> dict:
        """The ``COUNTERS`` fields' values, for the state."""
        return {}

    def _set_counters(self, counters: dict) -> None:
        """Keep the ``COUNTERS`` a restored state held (checked non-negative integers)."""

    def state_dict(self) -> dict:
        if self._cur is None:
            return envelope(self.KIND, self.VERSION, skip=self._pending_skip,
                            **self._counters(), source=self.source.state_dict())
        return envelope(self.KIND, self.VERSION, skip=self._cur.done, **self._counters(),
                        source=self._cur.before)

    def load_state_dict(self, state: Mapping) -> None:
        check_fields(state, self.KIND, self.VERSION, ("skip", *self.COUNTERS, "source"))
        skip = get_int(state, "skip", self.KIND)
        counters = {name: get_int(state, name, self.KIND) for name in self.COUNTERS}
        with nested("source"):
            self.source.load_state_dict(state["source"])
        self._cur = None
        self._pending_skip = skip  # applied to the next item read (no I/O now)
        self._set_counters(counters)

    @property
    def metrics(self) -> dict:
        return self.source.metrics

    def close(self) -> None:
        self._cur = None
        self.source.close()


class Packer(OpenItemCursor):
    """Documents -> sequences of exactly ``seq_len`` student tokens (see the module docstring)."""

    KIND, VERSION = "pack", 1

    def __init__(self, source: Any, *, tokenizer: str, seq_len: int):
        self.source, self.tokenizer, self.seq_len = source, tokenizer, seq_len
        self._backend = None
        self._eos = self._pad = 0
        self._cur: _OpenDocument | None = None

    def _setup(self) -> None:
        tok = load_tokenizer(self.tokenizer)
        if tok.eos_token_id is None:
            raise ConfigError(f"student tokenizer '{self.tokenizer}' has no EOS token to separate documents")
        self._eos = int(tok.eos_token_id)
        self._pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        self._backend = tok.backend_tokenizer

    @property
    def pad_id(self) -> int:
        if self._backend is None:
            self._setup()
        return self._pad

    def _open(self) -> bool:
        got = self._read()
        if got is None:
            return False
        doc, before = got
        enc = self._backend.encode(doc.text, add_special_tokens=False)
        self._cur = _OpenDocument(doc, enc, self._eos, before)
        self._cur.done = self._take_skip(len(self._cur.ids), doc.key, "tokens (EOS included)")
        return True

    def __iter__(self) -> Packer:
        return self

    def __next__(self) -> PackedSequence:
        if self._backend is None:
            self._setup()
        L = self.seq_len
        ids = np.full(L, self._pad, dtype=np.int64)
        pieces: list[Piece] = []
        texts: list[str] = []
        filled = 0
        while filled < L:
            if self._cur is None and not self._open():
                self._at_end()
                break
            cur = self._cur
            t0 = cur.done
            take = min(L - filled, len(cur.ids) - t0)
            t1 = t0 + take
            ids[filled : filled + take] = cur.ids[t0:t1]
            c0, c1 = cur.char_at(t0), cur.char_at(t1)
            done = t1 == len(cur.ids)
            pieces.append(Piece(cur.doc.key, c0, c1, filled, filled + take,
                                done and cur.doc.last_part,
                                starts_document=t0 == 0 and cur.doc.char_base == 0))
            base = cur.doc.char_base
            texts.append(cur.doc.text[c0 - base : c1 - base])
            filled += take
            cur.done = t1
            if done:
                self._cur = None
        if filled == 0:
            raise StopIteration
        return PackedSequence(ids, filled, pieces, texts)
