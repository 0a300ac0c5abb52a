"""One input record -> one tar sample: ``{key}.txt`` (text mode) or ``{key}.{messages_field}``
(``--messages-field``: a conversation, the member the chat readers read).

A conversation may be JSON text (JSONL value, string column) or a native Parquet/Arrow
``list<struct<role, content>>`` value; either way it is checked (``chat.messages``) and written
as its canonical JSON text, so the same conversation gives the same shard bytes whatever the
input format. Planning and the shard tasks both call :func:`sample_of`, so the sizes, the
``--min-chars`` filter and the errors agree between them.
"""

from __future__ import annotations

from typing import Any

from ..chat.messages import messages_json, parse_messages
from ..errors import DecodeError
from ..io.records_in import check_record, record_id


def sample_of(url: str, where: str, rec: Any, *, text_field: str, id_field: str | None,
              messages_field: str | None) -> tuple[str | None, str, str, int]:
    """``(doc_id or None, member extension, payload text, chars for --min-chars)``; a bad
    record is a DecodeError naming ``url``, the row/line and the field. With a messages field
    the characters counted are those of all contents."""
    if messages_field is None:
        doc_id, text = check_record(url, where, rec, text_field, id_field)
        return doc_id, "txt", text, len(text)
    if not isinstance(rec, dict) or rec.get(messages_field) is None:
        raise DecodeError(f"{where}: record has no '{messages_field}' (set --messages-field)",
                          url=url, key=where, field=messages_field)
    msgs = parse_messages(rec[messages_field], url=url, key=where, field=messages_field)
    payload = messages_json(msgs)
    check_record(url, where, {messages_field: payload}, messages_field, None)  # UTF-8
    doc_id = record_id(url, where, rec, id_field)
    return doc_id, messages_field, payload, sum(len(c) for _, c in msgs)
