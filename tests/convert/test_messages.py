"""``xtok convert --messages-field``: conversations from JSONL, Parquet/Arrow JSON-string
columns and native ``list<struct<role, content>>`` columns become byte-identical tar shards
whose ``{key}.messages`` members the chat pipeline reads; bad conversations are DecodeErrors
naming the input and row."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.convert.test_formats import outputs
from xtok_stream.chat.messages import ROLES, messages_json, parse_messages
from xtok_stream.convert import ConvertConfig, convert
from xtok_stream.errors import ConfigError, SourceError
from xtok_stream.stages.read import DocumentReader

CFG = ConvertConfig(id_field="id", messages_field="messages", samples_per_shard=7)


@pytest.fixture(scope="module")
def convs():
    """24 real conversations (the demo corpus), each with a native message list and an
    unrelated ``text`` column that --messages-field must not read."""
    from xtok_stream.chat.corpus import iter_conversations

    return [{"id": s["__key__"], "text": f"not read {i}", "native": json.loads(s["messages"])}
            for i, s in enumerate(iter_conversations(24, max_chars=400))]


@pytest.fixture(scope="module")
def conv_inputs(convs, tmp_path_factory):
    root = tmp_path_factory.mktemp("conv-inputs")
    as_json = [{"id": c["id"], "text": c["text"],
                # other key order and spacing than the canonical text: the output must not care
                "messages": json.dumps([{"content": m["content"], "role": m["role"]}
                                        for m in c["native"]], indent=1)} for c in convs]
    native = [{"id": c["id"], "text": c["text"], "messages": c["native"]} for c in convs]
    (root / "convs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in as_json))
    (root / "native.jsonl").write_text("".join(json.dumps(r) + "\n" for r in native))
    pq.write_table(pa.Table.from_pylist(as_json), root / "json.parquet", row_group_size=10)
    table = pa.Table.from_pylist(native)
    assert pa.types.is_list(table.schema.field("messages").type)  # list<struct<...>>
    pq.write_table(table, root / "native.parquet", row_group_size=10)
    feather.write_feather(table, root / "native.arrow", chunksize=9)
    return root


def read_back(out) -> list:
    man, shards = outputs(str(out))
    urls = [str(out / s["name"]) for s in man["shards"]]
    docs = list(DocumentReader(urls, text_field="messages", lane=0, num_lanes=1, seed=0,
                               epochs=1, shuffle_shards=False, storage_options={}))
    return man, shards, docs


@pytest.mark.parametrize("name", ["convs.jsonl", "native.jsonl", "json.parquet",
                                  "native.parquet", "native.arrow"])
def test_every_shape_gives_the_same_shards(name, convs, conv_inputs, tmp_path):
    convert([str(conv_inputs / name)], str(tmp_path / "ref"), CFG, workers=1, progress=False)
    ref = read_back(tmp_path / "ref")
    if name != "convs.jsonl":  # compare against the JSONL-of-JSON-text convert
        convert([str(conv_inputs / "convs.jsonl")], str(tmp_path / "j"), CFG, workers=1,
                progress=False)
        assert ref[1] == read_back(tmp_path / "j")[1]
    man, _, docs = ref
    assert man["config"]["messages_field"] == "messages" and man["total_samples"] == 24
    assert [d.key for d in docs] == [c["id"] for c in convs]
    for d, c in zip(docs, convs):
        assert parse_messages(d.text, url="", key=d.key, field="messages") == tuple(
            (m["role"], m["content"]) for m in c["native"])
        assert d.text == messages_json(parse_messages(c["native"], url="", key="", field=""))


def test_chat_pipeline_reads_the_converted_shards(convs, conv_inputs, tmp_path):
    """The chat lane (real qwen2 ChatML) over the shards renders every converted conversation
    once: its pieces tile each rendering."""
    from tests.chat.conftest import chat_config
    from tests.chat.test_pack import lane_sequences, student_render
    from xtok_stream.config import load_config

    convert([str(conv_inputs / "native.parquet")], str(tmp_path / "o"), CFG, workers=2,
            progress=False)
    man, _, _ = read_back(tmp_path / "o")
    shards = [str(tmp_path / "o" / s["name"]) for s in man["shards"]]
    cfg = load_config(chat_config(shards, seq_len=128, teachers=()))
    covered: dict[str, int] = {}
    for seq in lane_sequences(cfg, shards):
        for key, c0, c1 in seq.ledger():
            covered[key] = covered.get(key, 0) + (c1 - c0)
    assert covered == {c["id"]: len(student_render(c["native"]).text) for c in convs}


@pytest.mark.parametrize("bad,match", [
    ({"role": "robot", "content": "x"}, "role 'robot'"),
    ({"role": "user", "content": None}, "string 'content'"),
])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_bad_conversation_names_the_input_and_row(bad, match, fmt, convs, tmp_path):
    rows = [{"id": c["id"], "messages": c["native"]} for c in convs[:5]]
    rows[3] = {"id": "bad", "messages": [rows[3]["messages"][0], bad]}
    path = tmp_path / f"bad.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    # planning reports a scan task's error as a SourceError carrying the DecodeError's text
    with pytest.raises(SourceError, match=match) as err:
        convert([str(path)], str(tmp_path / "out"), CFG, workers=1, progress=False)
    where = "line 4" if fmt == "jsonl" else "row 3"
    assert str(path) in str(err.value) and where in str(err.value)
    assert "field 'messages'" in str(err.value) and "message 1" in str(err.value)
    assert not list((tmp_path / "out").glob("*.tar"))  # refused before any shard is written


def test_a_missing_messages_column_names_the_option(convs, tmp_path):
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"id": ["a"], "text": ["hello"]}), path)
    with pytest.raises(SourceError, match="--messages-field"):
        convert([str(path)], str(tmp_path / "out"), CFG, workers=1, progress=False)
    with pytest.raises(ConfigError, match="--messages-field '_x'"):
        ConvertConfig(messages_field="_x")


def test_text_converts_keep_their_plan_id_and_manifest(conv_inputs, tmp_path):
    """messages_field is left out of a text convert's config, so plan ids of existing text
    outputs stay valid; the messages convert of the same file gets another plan."""
    from xtok_stream.convert.plan import plan_id
    from xtok_stream.io.records_in import list_inputs

    inputs = list_inputs([str(conv_inputs / "json.parquet")])
    text = ConvertConfig(id_field="id")
    assert "messages_field" not in text.as_dict()
    assert plan_id(text, inputs) != plan_id(CFG, inputs)
    convert([str(conv_inputs / "json.parquet")], str(tmp_path / "t"), text, workers=1,
            progress=False)
    man, shards = outputs(str(tmp_path / "t"))
    assert "messages_field" not in man["config"] and b"not read 0" in shards[0]


def test_min_chars_counts_content_characters(convs, conv_inputs, tmp_path):
    n = sorted(sum(len(m["content"]) for m in c["native"]) for c in convs)[12]
    cfg = ConvertConfig(id_field="id", messages_field="messages", min_chars=n)
    convert([str(conv_inputs / "native.parquet")], str(tmp_path / "o"), cfg, workers=1,
            progress=False)
    keep = [c["id"] for c in convs if sum(len(m["content"]) for m in c["native"]) >= n]
    assert [d.key for d in read_back(tmp_path / "o")[2]] == keep


message = st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": st.text()})


@settings(max_examples=60, deadline=None)
@given(st.lists(message, min_size=1, max_size=5))
def test_native_and_json_text_give_the_same_canonical_text(msgs):
    native = parse_messages(msgs, url="u", key="k", field="messages")
    as_text = parse_messages(json.dumps(msgs), url="u", key="k", field="messages")
    assert native == as_text == tuple((m["role"], m["content"]) for m in msgs)
    assert parse_messages(messages_json(native), url="u", key="k", field="m") == native


def test_cli_messages_field(convs, conv_inputs, tmp_path):
    """The command line gives the API's bytes; --precompute with it is refused by name."""
    import subprocess
    import sys

    convert([str(conv_inputs / "native.parquet")], str(tmp_path / "api"), CFG, workers=1,
            progress=False)
    base = [sys.executable, "-m", "xtok_stream", "convert", str(conv_inputs / "native.parquet"),
            "--messages-field", "messages", "--id-field", "id", "--samples-per-shard", "7",
            "--workers", "1", "--no-progress"]
    res = subprocess.run(base + ["--out", str(tmp_path / "cli")], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert outputs(str(tmp_path / "cli"))[1] == outputs(str(tmp_path / "api"))[1]
    pipe = tmp_path / "p.yaml"
    pipe.write_text("student: {tokenizer: 'pkg:qwen2'}\n")
    res = subprocess.run(base + ["--out", str(tmp_path / "pre"), "--precompute", str(pipe)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "--precompute has no chat mode" in res.stderr


def test_shard_size_mode_cuts_conversations_alike(conv_inputs, tmp_path):
    """--shard-size-mb measures the {key}.messages members: JSONL and native Parquet plans cut
    at the same samples, just past the target."""
    cfg = ConvertConfig(id_field="id", messages_field="messages", shard_size_mb=0.004)
    got = []
    for name in ("convs.jsonl", "native.parquet"):
        convert([str(conv_inputs / name)], str(tmp_path / name), cfg, workers=1, progress=False)
        got.append(outputs(str(tmp_path / name)))
    assert got[0][1] == got[1][1] and len(got[0][1]) > 2
    out = tmp_path / "native.parquet"
    for shard in got[0][0]["shards"][:-1]:  # cut right after the member that reaches 4,000 B
        docs = list(DocumentReader([str(out / shard["name"])], text_field="messages", lane=0,
                                   num_lanes=1, seed=0, epochs=1, shuffle_shards=False,
                                   storage_options={}))
        member = [512 + -(-len(d.text.encode()) // 512) * 512 for d in docs]
        assert sum(member[:-1]) < 4_000 <= sum(member), member
