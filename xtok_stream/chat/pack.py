"""``chat pack``: conversations -> sequences of at most ``seq_len`` student tokens.

Each document's text is a JSON conversation, rendered in the student's chat template
(``render.py``). Whole conversations are packed; one that does not fit in the space left starts
the next sequence (the rest of this one is padding, ``length`` says how much is real). One that
does not fit in a whole sequence is, by ``chat.overflow``, ``split`` at message boundaries (a
single message over ``seq_len`` is cut and its tail counted) or ``truncate``\\ d to ``seq_len``
(tail counted)::

    seq_len = 8     conv a: [a0 a1 | a2 a3]  (2 messages)   conv b: [b0 b1 b2 | b3 b4 b5]
    seq 0: a0 a1 a2 a3 pad pad pad pad        piece (a, msgs 0-2)
    seq 1: b0 b1 b2 b3 b4 b5 pad pad          piece (b, msgs 0-2)

Pieces index the student's rendered text (``char_start``/``char_end``); ``extras["_chat"]``
carries per piece the messages and the student's per-message token layout (teachers render the
same messages themselves), ``extras["_loss_mask"]`` the student's ``loss_mask``.

Cursor: the upstream cursor before the open conversation plus the index of its next message
(``skip``), and ``truncated_tokens`` cut so far by the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DecodeError
from ..records import Document, PackedSequence, Piece
from ..stages.pack import OpenItemCursor
from ..tokenizers import load_tokenizer
from .config import ChatConfig
from .messages import Messages, parse_messages
from .render import Rendered, renderer


@dataclass(frozen=True, slots=True)
class ChatPiece:
    """One conversation part in a sequence: messages ``[lo, hi)``, the student's layout of
    them in sequence positions, and, when the part was cut inside message ``hi - 1``, how many
    characters of that content it kept (``cut_chars``; None when whole)."""

    messages: Messages
    lo: int
    hi: int
    content: np.ndarray  # int64 [hi - lo, 2] sequence positions of each content (clipped)
    bounds: np.ndarray  # int64 [hi - lo + 1] sequence positions of the message regions
    cut_chars: int | None
    shard: str = ""  # the conversation's shard URL, for the teachers' error messages


class _OpenConversation:
    __slots__ = ("doc", "msgs", "r", "mask", "before", "done")

    def __init__(self, doc: Document, msgs: Messages, r: Rendered, mask: np.ndarray,
                 before: dict, done: int):
        self.doc, self.msgs, self.r, self.mask, self.before, self.done = doc, msgs, r, mask, before, done


class ChatPacker(OpenItemCursor):
    KIND, VERSION = "chat_pack", 1
    COUNTERS = ("truncated_tokens",)

    def __init__(self, source: Any, *, tokenizer: str, seq_len: int, chat: ChatConfig):
        self.source, self.tokenizer, self.seq_len, self.chat = source, tokenizer, seq_len, chat
        self._renderer = None
        self._pad = 0
        self._cur: _OpenConversation | None = None
        self.truncated_tokens = 0

    def _setup(self) -> None:
        tok = load_tokenizer(self.tokenizer)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self._pad = int(pad or 0)
        self._renderer = renderer(self.tokenizer, self.chat.templates.get("student"),
                                  "chat template of student", self.chat.template_sha256("student"))

    @property
    def pad_id(self) -> int:
        if self._renderer is None:
            self._setup()
        return self._pad

    def _open(self) -> bool:
        got = self._read()
        if got is None:
            return False
        doc, before = got
        field = self.chat.messages_field
        msgs = parse_messages(doc.text, url=doc.shard, key=doc.key, field=field,
                              strip=self.chat.strip_content)
        try:
            r = self._renderer.render(msgs)
        except ValueError as exc:
            raise DecodeError(str(exc), url=doc.shard, key=doc.key, field=field) from exc
        skip = self._take_skip(len(r.roles), doc.key, "messages")
        self._cur = _OpenConversation(doc, msgs, r, r.loss_mask(self.chat.mask_end_of_turn),
                                      before, skip)
        return True

    def __iter__(self) -> ChatPacker:
        return self

    def __next__(self) -> PackedSequence:
        if self._renderer is None:
            self._setup()
        L = self.seq_len
        ids = np.full(L, self._pad, dtype=np.int64)
        mask = np.zeros(L, np.uint8)
        pieces: list[Piece] = []
        texts: list[str] = []
        chat: list[ChatPiece] = []
        filled = 0
        while filled < L:
            if self._cur is None and not self._open():
                self._at_end()
                break
            cur = self._cur
            r, lo = cur.r, cur.done
            t0, m = int(r.bounds[lo]), len(r.roles)
            truncating = False
            if len(r.ids) - t0 <= L - filled:
                t1, hi = len(r.ids), m
            elif filled:
                break  # starts the next sequence
            elif self.chat.overflow == "truncate":
                t1, truncating = t0 + L, True
                hi = int(np.searchsorted(r.bounds, t1, "left"))
            else:  # split at the last message boundary that fits
                hi = int(np.searchsorted(r.bounds, t0 + L, "right")) - 1
                if hi > lo:
                    t1 = int(r.bounds[hi])
                else:  # one message longer than seq_len: cut it
                    hi, t1 = lo + 1, t0 + L
            cut = t1 < int(r.bounds[hi])
            # truncate drops the rest of the conversation, split only the rest of the message
            hi_done = m if truncating else hi
            self.truncated_tokens += int(r.bounds[hi_done]) - t1 if truncating or cut else 0
            n = t1 - t0
            ids[filled : filled + n] = r.ids[t0:t1]
            mask[filled : filled + n] = cur.mask[t0:t1]
            shift = filled - t0
            content = np.clip(r.content[lo:hi], t0, t1) + shift
            bounds = np.clip(r.bounds[lo : hi + 1], t0, t1) + shift
            cut_chars = None
            if cut:
                cs, ce = r.content_chars[hi - 1]
                cut_chars = int(np.clip(r.ends[t1 - 1] - cs, 0, ce - cs)) \
                    if t1 > r.content[hi - 1, 0] else 0
            c0, c1 = int(r.starts[t0]) if t0 < len(r.ids) else len(r.text), int(r.ends[t1 - 1])
            pieces.append(Piece(cur.doc.key, c0, c1, filled, filled + n,
                                ends_document=hi_done == m, starts_document=lo == 0))
            texts.append(r.text[c0:c1])
            chat.append(ChatPiece(cur.msgs, lo, hi, content, bounds, cut_chars, cur.doc.shard))
            filled += n
            if hi_done == m:
                self._cur = None
            else:
                cur.done = hi_done
                if filled < L:
                    break  # a split conversation continues at the start of the next sequence
        if filled == 0:
            raise StopIteration
        return PackedSequence(ids, filled, pieces, texts,
                              extras={"_chat": chat, "_loss_mask": mask})

    def _counters(self) -> dict:
        return {"truncated_tokens": self.truncated_tokens}

    def _set_counters(self, counters: dict) -> None:
        self.truncated_tokens = counters["truncated_tokens"]

