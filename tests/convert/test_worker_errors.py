"""A data error in a convert/precompute worker (process pool or Ray task) reaches the caller as
the library error itself - DecodeError vs SourceError, with url/key/field - not a SourceError
rebuilt from its text."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xtok_stream.config import load_config
from xtok_stream.convert import ConvertConfig, convert
from xtok_stream.convert.precompute import precompute
from xtok_stream.errors import DecodeError
from xtok_stream.io.shards import encode_shard


def _inputs(tmp_path):
    """Two parquet files whose row 3 has no text (found while writing: planning with
    min_chars=0 counts rows only), and two JSONL files, the second without 'text' on line 2
    (found while planning)."""
    tmp_path.mkdir()
    for i in range(2):
        rows = [{"text": f"doc {i}.{r} " * 5 if r != 3 else None} for r in range(6)]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"p{i}.parquet")
    (tmp_path / "j0.jsonl").write_text("".join(json.dumps({"text": f"t{r}"}) + "\n"
                                               for r in range(4)))
    (tmp_path / "j1.jsonl").write_text('{"text": "a"}\n{"body": "b"}\n')
    return tmp_path


def _check(inp, out, **engine):
    with pytest.raises(DecodeError) as e:  # in a shard task
        convert([str(inp / "p0.parquet"), str(inp / "p1.parquet")], str(out / "a"),
                ConvertConfig(samples_per_shard=4), progress=False, **engine)
    assert type(e.value) is DecodeError and e.value.field == "text"
    assert e.value.key == "row 3" and e.value.url.endswith(".parquet")
    with pytest.raises(DecodeError) as e:  # in a planning (scan) task
        convert([str(inp / "j0.jsonl"), str(inp / "j1.jsonl")], str(out / "b"),
                ConvertConfig(), progress=False, **engine)
    assert e.value.field == "text" and e.value.url.endswith("j1.jsonl")
    assert "line 2" in e.value.key


def _bad_pipeline(tmp_path, local_shards):
    data, _ = encode_shard([{"__key__": "nofield", "json": b"{}"}])
    (tmp_path / "zz-bad.tar").write_bytes(data)
    return load_config({"source": {"urls": [*local_shards[0][:3], str(tmp_path / "zz-bad.tar")]},
                        "student": {"tokenizer": "pkg:qwen2", "seq_len": 128},
                        "teachers": [{"tokenizer": "pkg:mistral-v3"}],
                        "num_lanes": 2, "batch_size": 2, "shuffle": {"shards": False}})


def _check_precompute(cfg, out, **engine):
    with pytest.raises(DecodeError) as e:
        precompute(cfg, str(out), sequences_per_shard=4, progress=False, **engine)
    assert type(e.value) is DecodeError and e.value.field == "txt"
    assert e.value.key == "nofield" and e.value.url.endswith("zz-bad.tar")
    assert any("precompute lane" in n for n in e.value.__notes__)


def test_process_pool_errors_keep_type_and_fields(tmp_path, local_shards):
    inp = _inputs(tmp_path / "in")
    _check(inp, tmp_path, workers=2)
    _check_precompute(_bad_pipeline(tmp_path, local_shards), tmp_path / "pre", workers=2)


def test_ray_errors_keep_type_and_fields(tmp_path, local_shards):
    ray = pytest.importorskip("ray", reason="ray not installed: pip install 'xtok-stream[ray]'")
    inp = _inputs(tmp_path / "in")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _check(inp, tmp_path, engine="ray")
        _check_precompute(_bad_pipeline(tmp_path, local_shards), tmp_path / "pre", engine="ray")
    finally:
        ray.shutdown()
