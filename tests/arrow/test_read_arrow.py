"""The Arrow source: same documents as its converted shards, resume at every step, validation
split, bad data, huge documents."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import assert_exactly_once
from xtok_stream.config import BadDataConfig, load_config
from xtok_stream.convert import ConvertConfig, convert
from xtok_stream.errors import ConfigError, DecodeError, StateError
from xtok_stream.io.arrow import TableFile, open_table
from xtok_stream.loader import Loader
from xtok_stream.pipeline import build_lane
from xtok_stream.stages.read import DocumentReader
from xtok_stream.stages.read_arrow import (
    ArrowDocumentReader,
    in_validation,
    validation_mask,
)
from xtok_stream.testing import check_resume

from .conftest import ROWS


def reader(files, **kw):
    args = dict(lane=0, num_lanes=1, seed=0, epochs=1, shuffle_shards=False, text_field="text")
    return ArrowDocumentReader(files, **{**args, **kw})


def docs(stage):
    out = [(d.key, d.text) for d in stage]
    stage.close()
    return out


# -- the same documents as the converted shards -------------------------------------------------
@pytest.fixture(scope="module")
def converted(arrow_files, tmp_path_factory):
    files, _ = arrow_files
    out = tmp_path_factory.mktemp("converted")
    s = convert(files, str(out), ConvertConfig(samples_per_shard=ROWS), workers=1, progress=False)
    assert s.shards == len(files)  # one shard per input file
    return sorted(str(p) for p in out.glob("*.tar"))


@pytest.mark.parametrize("num_lanes,seed,shuffle", [(1, 0, False), (3, 7, True), (8, 2, True)])
def test_streams_the_same_documents_as_converted_shards(arrow_files, converted, num_lanes,
                                                        seed, shuffle):
    files, texts = arrow_files
    seen = []
    for lane in range(num_lanes):
        common = dict(lane=lane, num_lanes=num_lanes, seed=seed, epochs=2, shuffle_shards=shuffle)
        tar = docs(DocumentReader(converted, text_field="txt", **common))
        arrow = docs(ArrowDocumentReader(files, text_field="text", **common))
        assert arrow == tar  # same keys, texts and order, lane by lane
        seen += arrow
    assert sorted(seen) == sorted(list(texts.items()) * 2)


def test_loader_two_workers_exactly_once(arrow_files):
    files, texts = arrow_files
    cfg = load_config({
        "source": {"urls": files, "format": "arrow", "text_field": "text"},
        "student": {"tokenizer": "pkg:qwen2", "seq_len": 256}, "batch_size": 2,
        "num_lanes": 4, "seed": 3, "num_workers": 2, "shuffle": {"buffer": 4}})
    loader = Loader(cfg, rank=0, world_size=1)
    first = []
    for b in loader:
        first.append(b)
        if len(first) == 5:
            break
    state = json.loads(json.dumps(loader.state_dict()))
    loader2 = Loader(cfg, rank=0, world_size=1)
    loader2.load_state_dict(state)
    rest = list(loader2)
    pieces = [p for b in first + rest for m, row in zip(b["sample_mask"], b["pieces"]) if m
              for p in row]
    assert_exactly_once(pieces, texts)


# -- resume -------------------------------------------------------------------------------------
def test_reader_resumes_at_every_step_across_epochs(arrow_files):
    files, _ = arrow_files
    for lane in range(3):
        items = check_resume(lambda lane=lane: reader(files, lane=lane, num_lanes=3, seed=5,
                                                      epochs=2, shuffle_shards=True,
                                                      val_split=0.25),
                             max_state_bytes=512)
        assert items


def test_lane_with_shuffle_and_pack_resumes_at_every_step(arrow_files):
    files, _ = arrow_files
    cfg = load_config({
        "source": {"urls": files, "format": "arrow", "text_field": "text"},
        "student": {"tokenizer": "pkg:qwen2", "seq_len": 300}, "num_lanes": 2, "seed": 1,
        "epochs": 2, "shuffle": {"buffer": 3}})
    assert check_resume(lambda: build_lane(cfg, files, 1), every=2)


def test_state_of_another_stage_is_refused(arrow_files):
    files, _ = arrow_files
    with pytest.raises(StateError, match="read_arrow"):
        reader(files).load_state_dict({"kind": "read", "v": 2})


def test_construction_does_no_io(tmp_path):
    r = reader([str(tmp_path / "does-not-exist.parquet")], val_split=0.5)
    assert r.state_dict()["offset"] == 0  # built and pickled without touching storage
    import pickle

    pickle.loads(pickle.dumps(r))


# -- validation split ---------------------------------------------------------------------------
def test_val_split_partitions_rows(arrow_files):
    files, texts = arrow_files
    train = docs(reader(files, val_split=0.3))
    val = docs(reader(files, val_split=0.3, split="validation"))
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(texts.items())
    assert 0.1 < len(val) / len(texts) < 0.5
    assert docs(reader(files, val_split=0.3, split="validation")) == val  # stable
    other = docs(reader(files, val_split=0.3, split="validation", seed=1))
    assert set(other) != set(val)  # the seed picks the rows
    # independent of the lane count and of shard shuffling
    lanes = [d for lane in range(3) for d in docs(reader(files, lane=lane, num_lanes=3,
                                                         shuffle_shards=True, val_split=0.3,
                                                         split="validation"))]
    assert sorted(lanes) == sorted(val)


def test_validation_mask_matches_its_definition():
    m = validation_mask(11, "part-000", 5, 2005, 0.2)
    assert [bool(x) for x in m] == [in_validation(11, "part-000", r, 0.2) for r in range(5, 2005)]
    assert abs(m.mean() - 0.2) < 0.04


def test_validation_without_val_split_is_a_config_error(arrow_files):
    with pytest.raises(ConfigError, match="val_split"):
        reader(arrow_files[0], split="validation")


# -- bad data -----------------------------------------------------------------------------------
@pytest.fixture()
def bad_file(tmp_path):
    p = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["ok 0", None, "", "ok 3"]}), p)
    return str(p)


def test_missing_column_names_file_and_field(arrow_files, tmp_path):
    files, _ = arrow_files
    with pytest.raises(DecodeError) as e:
        docs(reader(files[:1], text_field="body"))
    assert e.value.url == files[0] and e.value.field == "body"
    assert "source.text_field" in str(e.value) and "has: id, text" in str(e.value)
    r = reader(files[:2], text_field="txt", bad_data=BadDataConfig(missing_field="skip"))
    assert docs(r) == [] and r.skipped["missing_field"] == 2


def test_null_and_empty_text_name_row_and_field(bad_file):
    with pytest.raises(DecodeError, match="row 1: 'text' is null") as e:
        docs(reader([bad_file]))
    assert e.value.key == "bad-00000001" and e.value.url == bad_file and e.value.field == "text"
    r = reader([bad_file], bad_data=BadDataConfig(missing_field="skip"))
    with pytest.raises(DecodeError, match="row 2: empty document"):
        docs(r)
    r = reader([bad_file], bad_data=BadDataConfig(missing_field="skip", empty_document="skip"))
    assert docs(r) == [("bad-00000000", "ok 0"), ("bad-00000003", "ok 3")]
    assert r.skipped["missing_field"] == 1 and r.skipped["empty_document"] == 1


def test_binary_column_and_wrong_type(tmp_path):
    p = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"text": pa.array([b"caf\xc3\xa9", b"\xff"], pa.binary())}), p)
    with pytest.raises(DecodeError, match="row 1: invalid UTF-8"):
        docs(reader([str(p)]))
    assert docs(reader([str(p)], bad_data=BadDataConfig(invalid_utf8="skip"))) == [
        ("bin-00000000", "café")]
    q = tmp_path / "num.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), q)
    with pytest.raises(DecodeError, match="type int64"):
        docs(reader([str(q)]))


def test_huge_documents_split_and_resume(tmp_path):
    p = tmp_path / "huge.parquet"
    rows = ["small one", "word " * 200 + "é" * 50, "tail"]
    pq.write_table(pa.table({"text": rows}), p, row_group_size=2)
    with pytest.raises(DecodeError, match="max_document_bytes"):
        docs(reader([str(p)], bad_data=BadDataConfig(max_document_bytes=128)))
    bad = BadDataConfig(max_document_bytes=128, huge_document="split")
    items = check_resume(lambda: reader([str(p)], epochs=2, bad_data=bad))
    once = list(reader([str(p)], bad_data=bad))
    assert 2 * len(once) == len(items)
    parts = [d.text for d in once if d.key == "huge-00000001"]
    assert len(parts) > 5 and "".join(parts) == rows[1]
    assert all(len(t.encode()) <= 128 for t in parts)


def test_table_file_units(arrow_files):
    files, _ = arrow_files
    tf = open_table(files[0])
    assert isinstance(tf, TableFile) and tf.starts == [0, 4, 8, 10]
    assert tf.unit_of(7) == 1 and tf.column(2, "text").to_pylist()[1] == \
        pq.read_table(files[0]).column("text")[9].as_py()
    tf.close()
    ipc = open_table(files[2])
    assert ipc.starts == [0, 3, 6, 9, 10]
    ipc.close()
