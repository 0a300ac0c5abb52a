"""One sample's conversation: a JSON list of ``{role, content}`` (roles system, user,
assistant, tool), checked once so every later stage can trust it."""

from __future__ import annotations

import json

from ..errors import DecodeError

ROLES = ("system", "user", "assistant", "tool")
Messages = tuple[tuple[str, str], ...]


def parse_messages(raw: str, *, url: str, key: str, field: str, strip: bool = False) -> Messages:
    """``raw`` JSON -> ((role, content), ...); a malformed conversation is a DecodeError."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"messages are not valid JSON ({exc.msg} at char {exc.pos})",
                          url=url, key=key, field=field) from exc
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    if not isinstance(data, list) or not data:
        raise DecodeError("messages must be a non-empty JSON list of {role, content}",
                          url=url, key=key, field=field)
    out = []
    for i, m in enumerate(data):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise DecodeError(f"message {i} is not an object with a string 'content'",
                              url=url, key=key, field=field)
        role = m.get("role")
        if role not in ROLES:
            raise DecodeError(f"message {i} has role {role!r}, not one of {', '.join(ROLES)}",
                              url=url, key=key, field=field)
        content = m["content"].strip() if strip else m["content"]
        out.append((role, content))
    return tuple(out)
