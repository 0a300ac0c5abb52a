"""Render a conversation in one model's chat template and lay its tokens out per message.

A template is rendered with a sentinel in place of every content, which tells where each
content goes (that skeleton depends on the roles only, so it is cached per roles sequence); the
one real rendering per conversation must then equal the skeleton with the contents put back
(else the template changes contents, e.g. trims them: ``chat.strip_content``). The text is
tokenized whole, as ``apply_chat_template(tokenize=True)`` does, so the ids are the template's
own. Per message the layout holds::

    <|im_start|>user\\n  What is 2+2?  <|im_end|>\\n   <|im_start|>assistant\\n  4  <|im_end|>\\n
    |---- head -------|-- content --|--- tail -----|------- head ----------|cont|--- tail ---|
    bounds[0]                                      bounds[1]                                bounds[2]

``content[k]``: the token range of message k's content (a token reaching into the template
only by whitespace, like SentencePiece's ``▁Hello``, counts as content; one that carries other
template text does not). ``bounds[k]``: where message k's tokens start; the tail of a message
runs to its first special token after the content (its end of turn, ``eot[k]``) and the
whitespace after it. ``mistral-common`` renders with mistral-common's own instruct encoding
(its ids, text rebuilt from its pieces).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..tokenizers import load_tokenizer
from .config import MISTRAL_COMMON
from .messages import Messages

_SENTINEL = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    ids: np.ndarray  # int64 [n]
    starts: np.ndarray  # int64 [n] char start of each token in text
    ends: np.ndarray  # int64 [n]
    roles: tuple[str, ...]
    content_chars: np.ndarray  # int64 [m, 2] each content's char span in text
    content: np.ndarray  # int64 [m, 2] each content's token range
    bounds: np.ndarray  # int64 [m + 1] message k = tokens [bounds[k], bounds[k + 1])
    eot: np.ndarray  # int64 [m] end-of-turn token after the content, -1 if none

    def loss_mask(self, end_of_turn: bool = True) -> np.ndarray:
        """uint8 [n]: 1 on assistant content (and its end-of-turn token)."""
        mask = np.zeros(len(self.ids), np.uint8)
        for k, role in enumerate(self.roles):
            if role == "assistant":
                mask[self.content[k, 0] : self.content[k, 1]] = 1
                if end_of_turn and self.eot[k] >= 0:
                    mask[self.eot[k]] = 1
        return mask


def layout(text: str, ids, starts, ends, roles, content_chars, specials: frozenset) -> Rendered:
    """Token ranges of contents and message regions (see the module docstring)."""
    n, m = len(ids), len(content_chars)
    content = np.zeros((m, 2), np.int64)
    prev = 0
    for k, (cs, ce) in enumerate(content_chars):
        if cs == ce:
            lo = hi = max(prev, int(np.searchsorted(starts, cs, "left")))
        else:
            lo = int(np.searchsorted(ends, cs, "right"))  # first token ending after cs
            if lo < n and starts[lo] < cs and text[starts[lo] : cs].strip():
                lo += 1  # carries template text: a template token
            hi = int(np.searchsorted(starts, ce, "left"))  # first token starting at/after ce
            if hi > lo and ends[hi - 1] > ce and text[ce : ends[hi - 1]].strip():
                hi -= 1
            lo = max(lo, prev)
            hi = max(hi, lo)
        content[k] = lo, hi
        prev = hi
    bounds = np.zeros(m + 1, np.int64)
    bounds[m] = n
    eot = np.full(m, -1, np.int64)
    for k in range(m):
        t, stop = int(content[k, 1]), (int(content[k + 1, 0]) if k + 1 < m else n)
        b = t
        while t < stop:
            if int(ids[t]) in specials:
                eot[k], b = t, t + 1
                while b < stop and not text[starts[b] : ends[b]].strip():
                    b += 1
                break
            t += 1
        if k + 1 < m:
            bounds[k + 1] = b
    return Rendered(text, ids, starts, ends, roles, np.asarray(content_chars, np.int64).reshape(m, 2),
                    content, bounds, eot)


def resolve_template(value: str | None, tok: Any, where: str, sha256: str | None = None) -> str:
    """Inline Jinja, a file path, or the tokenizer's own template. A file must still have the
    ``sha256`` pinned when the config was loaded (``chat/config.py``): else it was edited since,
    and this process would render another template than the one the state fingerprints."""
    if value is None:
        if not getattr(tok, "chat_template", None):
            raise ConfigError(f"{where}: the tokenizer has no chat_template; set chat.templates."
                              f"{where.rsplit(' ', 1)[-1]} to inline Jinja, a .jinja file or "
                              f"{MISTRAL_COMMON}")
        return tok.chat_template
    if "{{" in value or "{%" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}: chat template file not found: {value} (chat.templates)")
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(f"{where}: template file {value} changed since the pipeline config was "
                          f"loaded (sha256 now {hashlib.sha256(data).hexdigest()[:12]}, pinned "
                          f"{sha256[:12]}); reload the config (chat.templates."
                          f"{where.rsplit(' ', 1)[-1]})")
    return data.decode("utf-8")


class JinjaRenderer:
    """transformers' ``apply_chat_template`` with one model's template."""

    def __init__(self, tokenizer: str, template: str | None, where: str,
                 sha256: str | None = None):
        self.tok = load_tokenizer(tokenizer)
        self.where = where
        self.template = resolve_template(template, self.tok, where, sha256)
        self.specials = frozenset(int(i) for i, t in self.tok.added_tokens_decoder.items() if t.special)
        self._backend = self.tok.backend_tokenizer
        self._skeletons: dict[tuple[str, ...], list[str]] = {}  # roles -> text around contents

    def _apply(self, msgs: list[dict]) -> str:
        return self.tok.apply_chat_template(msgs, tokenize=False, chat_template=self.template)

    def _skeleton(self, roles: tuple[str, ...], fresh: bool = False) -> list[str]:
        """The template's text around each content: the render with a sentinel for every
        content, split at them. It depends on the roles only (the sentinels stand for every
        content), so it is cached per roles sequence: one real render per conversation then
        places the contents. ``fresh`` re-renders (a template reading the clock, e.g. a date
        in the system prompt, may have moved on)."""
        parts = None if fresh else self._skeletons.get(roles)
        if parts is None:
            marked = self._apply([{"role": r, "content": f"\ue000{k}\ue001"}
                                  for k, r in enumerate(roles)])
            parts = _SENTINEL.split(marked)
            order = [int(x) for x in parts[1::2]]
            if order != list(range(len(roles))):
                raise ConfigError(f"{self.where}: the chat template does not put every message's "
                                  f"content once and in order (got {order}); use another "
                                  "template (chat.templates)")
            parts = parts[0::2]
            if len(self._skeletons) >= 4096:  # bounded: drop the oldest
                self._skeletons.pop(next(iter(self._skeletons)))
            self._skeletons[roles] = parts
        return parts

    def _place(self, parts: list[str], messages: Messages) -> tuple[str, list]:
        out, spans, pos = [], [], 0
        for k, (_, content) in enumerate(messages):
            out += [parts[k], content]
            pos += len(parts[k])
            spans.append((pos, pos + len(content)))
            pos += len(content)
        out.append(parts[-1])
        return "".join(out), spans

    def render(self, messages: Messages) -> Rendered:
        roles = tuple(r for r, _ in messages)
        real = self._apply([{"role": r, "content": c} for r, c in messages])
        text, spans = self._place(self._skeleton(roles), messages)
        if real != text:  # once more with a fresh skeleton before calling it a content change
            text, spans = self._place(self._skeleton(roles, fresh=True), messages)
        if real != text:
            raise ValueError(f"{self.where}: the chat template changes message contents (e.g. "
                             "trims them); set chat.strip_content: true or use a template that "
                             "inserts contents verbatim")
        enc = self._backend.encode(text, add_special_tokens=False)
        offs = np.array(enc.offsets, np.int64).reshape(-1, 2)
        return layout(text, np.array(enc.ids, np.int64), offs[:, 0], offs[:, 1],
                      tuple(r for r, _ in messages), spans, self.specials)


class MistralCommonRenderer:
    """mistral-common's instruct encoding (v3, SentencePiece). mistral-common moves a system
    prompt into the last user turn, so conversations with a system message are refused."""

    def __init__(self, tokenizer: str, where: str):
        from mistral_common.protocol.instruct.validator import ValidationMode
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        path = MistralTokenizer.v3().instruct_tokenizer.tokenizer.file_path
        self.mt = MistralTokenizer.from_file(str(path), mode=ValidationMode.finetuning)
        self.where = where
        raw = self.mt.instruct_tokenizer.tokenizer
        self._control = frozenset(int(i) for i in range(raw.num_special_tokens))
        self._bytes = _piece_bytes(raw)

    def render(self, messages: Messages) -> Rendered:
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        if any(r in ("system", "tool") for r, _ in messages):
            raise ValueError(f"{self.where}: mistral-common's encoding moves system prompts into "
                             "the last user turn and needs tool-call ids; use a Jinja template for "
                             "this model (chat.templates) for conversations with system/tool turns")
        req = ChatCompletionRequest(messages=[{"role": r, "content": c} for r, c in messages])
        try:
            ids = self.mt.encode_chat_completion(req).tokens
        except Exception as exc:  # mistral-common's validation errors
            raise ValueError(f"{self.where}: mistral-common refused the conversation: {exc}") from exc
        blob = b"".join(self._bytes[i] for i in ids)
        text = blob.decode("utf-8", errors="replace")
        # byte offset -> char index (continuation bytes belong to their character)
        starts_b = np.cumsum([0] + [len(self._bytes[i]) for i in ids])
        char_of = np.cumsum(np.frombuffer(blob, np.uint8) & 0xC0 != 0x80) - 1
        char_of = np.append(char_of, len(text))
        starts, ends = char_of[starts_b[:-1]], char_of[np.maximum(starts_b[1:] - 1, 0)] + 1
        ends = np.where(starts_b[1:] > starts_b[:-1], ends, starts)
        spans, pos = [], 0
        for k, (_, content) in enumerate(messages):
            at = text.find(content, pos)
            if at < 0:
                raise ValueError(f"{self.where}: message {k}'s content is not in mistral-common's "
                                 "rendering (its tokenizer changed it)")
            spans.append((at, at + len(content)))
            pos = at + len(content)
        return layout(text, np.array(ids, np.int64), starts.astype(np.int64), ends.astype(np.int64),
                      tuple(r for r, _ in messages), spans, self._control)


def _piece_bytes(raw: Any) -> list[bytes]:
    """Bytes of every SentencePiece id as it appears in the rendering."""
    out = []
    for i in range(raw.n_words):
        piece = raw.id_to_piece(i)
        if i < raw.num_special_tokens:
            out.append(piece.encode())
        elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):
            out.append(bytes([int(piece[3:5], 16)]))
        else:
            out.append(piece.replace("\u2581", " ").encode())
    return out


@functools.lru_cache(maxsize=32)
def renderer(tokenizer: str, template: str | None, where: str, sha256: str | None = None):
    """One renderer per (tokenizer, template, pinned file sha256) and process."""
    if template == MISTRAL_COMMON:
        return MistralCommonRenderer(tokenizer, where)
    return JinjaRenderer(tokenizer, template, where, sha256)
