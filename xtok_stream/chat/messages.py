"""One sample's conversation: a list of ``{role, content}`` (roles system, user, assistant,
tool), checked once so every later stage can trust it.

A conversation arrives as JSON text (tar members, JSONL, string columns) or as the Python
value of a native Arrow/Parquet ``list<struct<role, content>>`` column; ``messages_json``
turns the latter into the canonical JSON text that readers and ``xtok convert`` pass on, so
both shapes reach the packer as the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import DecodeError

ROLES = ("system", "user", "assistant", "tool")
Messages = tuple[tuple[str, str], ...]


def parse_messages(raw: Any, *, url: str, key: str, field: str, strip: bool = False) -> Messages:
    """``raw`` (JSON text, or an already decoded list) -> ((role, content), ...); a malformed
    conversation is a DecodeError naming ``url``, ``key`` and ``field``."""
    if isinstance(raw, (str, bytes)):
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            pos = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise DecodeError(f"{key}: messages are not valid JSON "
                              f"({getattr(exc, 'msg', exc)}{pos})",
                              url=url, key=key, field=field) from exc
    else:
        data = raw
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    if not isinstance(data, list) or not data:
        raise DecodeError(f"{key}: messages must be a non-empty JSON list of {{role, content}}",
                          url=url, key=key, field=field)
    out = []
    for i, m in enumerate(data):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise DecodeError(f"{key}: message {i} is not an object with a string 'content'",
                              url=url, key=key, field=field)
        role = m.get("role")
        if role not in ROLES:
            raise DecodeError(f"{key}: message {i} has role {role!r}, not one of "
                              f"{', '.join(ROLES)}", url=url, key=key, field=field)
        content = m["content"].strip() if strip else m["content"]
        out.append((role, content))
    return tuple(out)


def messages_json(msgs: Messages) -> str:
    """Canonical JSON text of a checked conversation (compact, keys in order, UTF-8 kept):
    the same conversation always gives the same bytes."""
    return json.dumps([{"role": r, "content": c} for r, c in msgs], ensure_ascii=False,
                      separators=(",", ":"))


def native_text(value: Any, *, url: str, key: str, field: str) -> Any:
    """A native ``list<struct>`` cell -> its canonical JSON text (checked); other values
    (JSON text, bytes, None) pass unchanged for the reader's own checks."""
    if isinstance(value, list):
        return messages_json(parse_messages(value, url=url, key=key, field=field))
    return value
