"""A Parquet/Arrow source whose messages column is native ``list<struct<role, content>>``
streams exactly as the same conversations held as JSON text; a malformed native conversation
is a DecodeError naming the file and the row's key."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.chat.conftest import chat_config
from tests.chat.test_pack import lane_sequences
from xtok_stream.config import load_config
from xtok_stream.errors import DecodeError


def _cfg(path):
    cfg = chat_config([str(path)], seq_len=128, teachers=("pkg:deepseek-v4",))
    cfg["source"]["format"] = "arrow"
    return load_config(cfg)


def test_native_column_streams_as_json_text(chat_samples, tmp_path):
    native = [json.loads(s["messages"]) for s in chat_samples]
    pq.write_table(pa.table({"messages": [s["messages"] for s in chat_samples]}),
                   tmp_path / "text.parquet", row_group_size=8)
    table = pa.Table.from_pylist([{"messages": m} for m in native])
    assert pa.types.is_list(table.schema.field("messages").type)
    pq.write_table(table, tmp_path / "native.parquet", row_group_size=8)
    # same file stem -> same default keys, so the two streams must be equal item by item
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "text.parquet").rename(tmp_path / "a" / "convs.parquet")
    (tmp_path / "native.parquet").rename(tmp_path / "b" / "convs.parquet")
    pa_, pb = str(tmp_path / "a" / "convs.parquet"), str(tmp_path / "b" / "convs.parquet")
    a, b = lane_sequences(_cfg(pa_), [pa_]), lane_sequences(_cfg(pb), [pb])
    assert len(a) == len(b) > 3
    for x, y in zip(a, b):
        assert x.ledger() == y.ledger() and x.length == y.length
        np.testing.assert_array_equal(x.input_ids, y.input_ids)
        np.testing.assert_array_equal(x.extras["_loss_mask"], y.extras["_loss_mask"])
        tx, ty = x.extras["deepseek-v4"], y.extras["deepseek-v4"]
        for k in ("input_ids", "loss_mask", "student_spans", "teacher_spans", "exact"):
            np.testing.assert_array_equal(tx[k], ty[k])


def test_a_bad_native_conversation_names_file_and_row(chat_samples, tmp_path):
    rows = [{"messages": json.loads(s["messages"])} for s in chat_samples[:4]]
    rows[2]["messages"][0]["role"] = "narrator"
    path = tmp_path / "convs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DecodeError, match="role 'narrator'") as err:
        lane_sequences(_cfg(path), [str(path)])
    assert str(path) in str(err.value) and "convs-00000002" in str(err.value)
    assert err.value.field == "messages"


def test_text_mode_refuses_a_messages_column(chat_samples, tmp_path):
    """Without a chat block a list column is not text: streaming its JSON as text would be a
    silent mistake."""
    path = tmp_path / "convs.parquet"
    pq.write_table(pa.Table.from_pylist([{"txt": json.loads(s["messages"])}
                                         for s in chat_samples[:4]]), path)
    cfg = chat_config([str(path)], seq_len=128, teachers=())
    del cfg["chat"]
    cfg["source"]["format"] = "arrow"
    with pytest.raises(DecodeError, match="not string or binary") as err:
        lane_sequences(load_config(cfg), [str(path)])
    assert str(path) in str(err.value)
