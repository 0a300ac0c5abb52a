"""Edited states (type swaps, negative or out-of-range values, missing or unknown fields, wrong
shapes) always raise a StateError naming the field - at load or at the first read - and never
resume into a silent repeat or drop. States are real ones, taken mid-run from real shards."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtok_stream.config import BadDataConfig, load_config
from xtok_stream.errors import StateError
from xtok_stream.io.shards import write_shards
from xtok_stream.loader import Loader
from xtok_stream.pipeline import build_lane
from xtok_stream.stages.read import DocumentReader
from xtok_stream.stages.read_arrow import ArrowDocumentReader

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
NOT_BOUNDED = ("counter", "skipped")  # any count is valid there: only types and signs are checked


def leaves(node, path=()):
    """Every (path, value) of a nested state, containers included."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, (*path, i))


def edit(state, path, how):
    """``state`` with one edit at ``path``; None if the edit does not apply there."""
    out = copy.deepcopy(state)
    parent = out
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1] if path else None
    value = parent[key] if path else out
    if how == "missing":
        if not isinstance(parent, dict) or not path:
            return None
        del parent[key]
    elif how == "unknown_field":
        if not isinstance(value, dict) or "kind" not in value:
            return None
        value["surprise"] = 0
    elif how in ("negative", "huge"):
        if type(value) is not int or (how == "huge" and any(n in path for n in NOT_BOUNDED)):
            return None
        if key == "v":
            return None  # a version is "another version", covered by type swaps below
        parent[key] = -1 - value if how == "negative" else 10**12 + value
    else:  # a type swap
        if not path:
            return None
        parent[key] = {"str": lambda v: str(v) + "_", "float": lambda v: 0.5,
                       "none": lambda v: None, "list": lambda v: [v, v, v, v],
                       "dict": lambda v: {"x": v}, "bool": lambda v: True}[how](value)
        if parent[key] == value:
            return None
    return out


EDITS = ["missing", "unknown_field", "negative", "huge", "str", "float", "none", "list", "dict",
         "bool"]


def assert_refused(make, state):
    stage = make()
    with pytest.raises(StateError) as e:
        stage.load_state_dict(json.loads(json.dumps(state)))
        for _ in stage:
            pass
    stage.close()
    return str(e.value)


@pytest.fixture(scope="module")
def shards(small_docs, tmp_path_factory):
    out = tmp_path_factory.mktemp("sv")
    return [str(out / i.name) for i in write_shards(small_docs[:24], str(out),
                                                   samples_per_shard=8)]


@pytest.fixture(scope="module")
def parquet_files(small_docs, tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path_factory.mktemp("svpq")
    paths = []
    for i in range(4):
        p = out / f"part-{i}.parquet"
        pq.write_table(pa.table({"text": [d["txt"] for d in small_docs[i * 6:(i + 1) * 6]]}), p,
                       row_group_size=4)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def lane_state(shards):
    """(make a lane, a real mid-run state: shuffle buffer full, pack inside a document)."""
    cfg = load_config({"source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2",
                                                               "seq_len": 120},
                       "num_lanes": 1, "seed": 2, "shuffle": {"buffer": 3}})

    def make():
        return build_lane(cfg, shards, 0)

    lane = make()
    for _ in range(6):
        next(lane)
    state = lane.state_dict()
    lane.close()
    assert state["skip"] > 0 and len(state["source"]["buffer"]) == 2  # size - 1 after a draw
    assert state["source"]["since"] > 0 and state["source"]["source"]["offset"] > 0
    return make, state


@SETTINGS
@given(data=st.data())
def test_an_edited_lane_state_is_always_refused(lane_state, data):
    make, state = lane_state
    paths = [p for p, _ in leaves(state)]
    path = data.draw(st.sampled_from(paths), label="path")
    how = data.draw(st.sampled_from(EDITS), label="edit")
    edited = edit(state, path, how)
    if edited is None:
        return
    assert_refused(make, edited)


def test_the_error_names_the_dotted_field(lane_state):
    make, state = lane_state
    bad = edit(state, ("source", "source", "slot"), "huge")
    assert assert_refused(make, bad).startswith("source.source.slot: ")
    bad = edit(state, ("source", "buffer", 1, 2), "negative")
    assert assert_refused(make, bad).startswith("source.buffer.1: ")
    bad = edit(state, ("source", "source", "skipped", "invalid_utf8"), "str")
    assert assert_refused(make, bad).startswith("source.source.skipped.invalid_utf8: ")


def test_a_part_on_an_ordinary_member_is_refused_not_repeated(shards):
    """Issue 10 item 5: ``part > 0`` on an ordinary member repeated that document forever."""
    bad = BadDataConfig(huge_document="split")

    def make():
        return DocumentReader(shards, lane=0, num_lanes=1, seed=0, epochs=1, bad_data=bad)

    r = make()
    next(r)
    state = dict(r.state_dict(), part=100, part_chars=90)
    msg = assert_refused(make, state)
    assert msg.startswith("part: ") and "max_document_bytes" in msg
    # under the default policy the cursor cannot be inside a windowed document at all
    plain = DocumentReader(shards, lane=0, num_lanes=1, seed=0, epochs=1)
    with pytest.raises(StateError, match="huge_document: split"):
        plain.load_state_dict(state)


def test_an_offset_that_is_not_a_header_is_refused(shards):
    def make():
        return DocumentReader(shards, lane=0, num_lanes=1, seed=0, epochs=1)

    r = make()
    next(r)
    state = r.state_dict()
    assert assert_refused(make, dict(state, offset=state["offset"] + 512)).startswith("offset: ")
    assert "past the end" in assert_refused(make, dict(state, offset=1 << 30))
    assert "multiple of 512" in assert_refused(make, dict(state, offset=state["offset"] + 1))


@SETTINGS
@given(data=st.data())
def test_an_edited_arrow_state_is_always_refused(parquet_files, data):
    files = parquet_files

    def make():
        return ArrowDocumentReader(files, lane=0, num_lanes=2, seed=1, epochs=1)

    r = make()
    for _ in range(5):
        next(r)
    state = r.state_dict()
    r.close()
    path = data.draw(st.sampled_from([p for p, _ in leaves(state)]), label="path")
    edited = edit(state, path, data.draw(st.sampled_from(EDITS), label="edit"))
    if edited is not None:
        assert_refused(make, edited)


def test_loader_state_fields_are_checked(shards):
    cfg = load_config({"source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2",
                                                               "seq_len": 120},
                       "num_lanes": 2, "seed": 2, "batch_size": 2})
    loader = Loader(cfg)
    it = iter(loader)
    next(it)
    state = json.loads(json.dumps(loader.state_dict()))
    del it
    for path, how, field in [(("step",), "negative", "step"),
                             (("ranks", "0", "next_worker"), "huge", "ranks.0.next_worker"),
                             (("lanes",), "list", "lanes"),
                             (("v",), "str", "v")]:
        with pytest.raises(StateError, match=f"^{field}"):
            Loader(cfg).load_state_dict(edit(state, path, how))
    # a lane state is checked by its stages when iteration starts, named under lanes.N; so is
    # a position found bad at the first read (an offset that is no tar header)
    for path, value, field in [(("lanes", "1", "source", "slot"), 10**12, "source.slot"),
                               (("lanes", "1", "source", "offset"), None, "source.offset")]:
        bad = copy.deepcopy(state)
        lane = bad["lanes"]["1"]
        lane["source"][path[-1]] = value if value is not None else lane["source"]["offset"] + 512
        with pytest.raises(StateError, match=rf"^lanes\.1\.{field}: "):
            again = Loader(cfg)
            again.load_state_dict(bad)
            next(iter(again))
