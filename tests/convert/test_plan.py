"""Planning, input listing, array-slot parsing and error messages."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xtok_stream.convert import ConvertConfig
from xtok_stream.convert.engines import owned, task_slot
from xtok_stream.convert.plan import make_plan, scan_file
from xtok_stream.errors import ConfigError, DecodeError
from xtok_stream.io.records_in import iter_records, list_inputs
from xtok_stream.io.shards import encode_shard


def plan_for(paths, cfg):
    inputs = list_inputs([str(p) for p in paths])
    return make_plan(inputs, [scan_file(i, cfg, {}) for i in inputs], cfg)


def test_docstring_example(tmp_path):
    pq.write_table(pa.table({"text": ["hello!", "hi", "howdy", "greetings"]}), tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text('{"text": "salut tout"}\n\n{"text": "yo"}\n')
    plan = plan_for([tmp_path / "a.parquet", tmp_path / "b.jsonl"],
                    ConvertConfig(samples_per_shard=3, min_chars=5))
    assert [(s["name"], s["samples"]) for s in plan.shards] == [("shard-000000.tar", 3),
                                                               ("shard-000001.tar", 1)]
    assert plan.shards[0]["slices"] == [[0, 0, 4, None, None]]
    assert plan.shards[1]["slices"] == [[1, 0, 1, 0, 1]]
    assert (plan.rows, plan.kept) == ([4, 2], [3, 1])


def test_plan_is_deterministic_and_spans_files(tmp_path):
    for name in ("x", "y"):
        pq.write_table(pa.table({"text": [f"{name}{i}" * 50 for i in range(25)]}),
                       tmp_path / f"{name}.parquet", row_group_size=7)
    cfg = ConvertConfig(shard_size_mb=0.01)
    a = plan_for([tmp_path / "*.parquet"], cfg)
    b = plan_for([tmp_path / "x.parquet", tmp_path / "y.parquet"], cfg)
    assert a.to_json() == b.to_json()
    assert any(len(s["slices"]) == 2 for s in a.shards)  # a shard crossing the file boundary
    assert sum(s["samples"] for s in a.shards) == 50


def test_iter_records_compat(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n\n{"text": "b"}\n')
    assert list(iter_records([str(tmp_path / "x.jsonl")])) == [("x-00000000", "a"),
                                                               ("x-00000001", "b")]


def test_duplicate_ids_named(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["t1", "t2"]}), tmp_path / "p.parquet")
    (tmp_path / "q.jsonl").write_text('{"id": "c", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(DecodeError, match=r"duplicate document id 'a' at .*p.parquet row 0 and "
                                          r".*q.jsonl line 2"):
        plan_for([tmp_path / "p.parquet", tmp_path / "q.jsonl"], ConvertConfig(id_field="id"))


def test_same_stem_needs_id_field(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "part.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ConfigError, match="same stem 'part'.*--id-field"):
        plan_for([tmp_path / "*/part.jsonl"], ConvertConfig())


def test_dataset_dict_needs_split(inputs):
    with pytest.raises(ConfigError, match=r"splits \['train', 'test'\].*--split"):
        list_inputs([str(inputs["hf_dict"])])
    files = list_inputs([str(inputs["hf_dict"])], split="test")
    assert [f.stem for f in files] == ["hf_dict-test-data-00000-of-00001"]
    assert [f.url.rsplit("/", 1)[-1] for f in list_inputs([str(inputs["hf"])])] == [
        "data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]


def test_bad_text_named(tmp_path):
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "n.parquet")
    with pytest.raises(DecodeError, match="column 'text' is int64, not text"):
        plan_for([tmp_path / "n.parquet"], ConvertConfig(min_chars=1))
    with pytest.raises(DecodeError, match=r"no column\(s\) \['body'\]"):
        plan_for([tmp_path / "n.parquet"], ConvertConfig(text_field="body", min_chars=1))


def test_task_slot_env():
    assert task_slot(None, None, False, {"AWS_BATCH_JOB_ARRAY_INDEX": "3"}) is None  # not asked
    assert task_slot(None, None, True, {"AWS_BATCH_JOB_ARRAY_INDEX": "3",
                                        "AWS_BATCH_JOB_ARRAY_SIZE": "5"}) == (3, 5)
    assert task_slot(None, 4, False, {"JOB_COMPLETION_INDEX": "1"}) == (1, 4)
    assert task_slot(None, None, True, {"CLOUD_RUN_TASK_INDEX": "0",
                                        "CLOUD_RUN_TASK_COUNT": "2"}) == (0, 2)
    assert task_slot(2, None, False, {"BATCH_TASK_COUNT": "3"}) == (2, 3)
    assert task_slot(None, None, True, {"XTOK_TASK_INDEX": "1", "XTOK_TASK_COUNT": "2",
                                        "AWS_BATCH_JOB_ARRAY_INDEX": "0"}) == (1, 2)
    with pytest.raises(ConfigError, match="no task count.*--task-count"):
        task_slot(None, None, True, {"JOB_COMPLETION_INDEX": "1"})
    with pytest.raises(ConfigError, match="not in"):
        task_slot(3, 3, False, {})
    assert owned(8, (1, 3)) == [1, 4, 7] and owned(3, None) == [0, 1, 2]


def test_tar_bytes_match_webdataset():
    from webdataset import TarWriter

    samples = [{"__key__": "k" * (40 * i + 1), "txt": "é" * (300 * i)} for i in range(5)]
    buf = io.BytesIO()
    with TarWriter(buf, encoder=False, mtime=0, user="xtok", group="xtok", mode=0o444) as tw:
        for s in samples:
            tw.write({"__key__": s["__key__"], "txt": s["txt"].encode()})
    assert encode_shard(samples)[0] == buf.getvalue()


def test_manifest_records_sources_and_config(inputs, tmp_path):
    from xtok_stream.convert import convert

    convert([str(inputs["parquet"])], str(tmp_path), ConvertConfig(samples_per_shard=100),
            workers=1, progress=False)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["sources"] == [{"url": str(inputs["parquet"]), "format": "parquet",
                               "bytes": inputs["parquet"].stat().st_size, "rows": 160,
                               "kept": 160}]
    assert man["config"]["samples_per_shard"] == 100 and man["total_samples"] == 160
    assert [s["samples"] for s in man["shards"]] == [100, 60]
