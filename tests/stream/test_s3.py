"""Object storage through a real moto S3 server on 127.0.0.1."""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from tests.helpers import assert_exactly_once
from xtok_stream.config import RetryConfig, load_config
from xtok_stream.errors import SourceError
from xtok_stream.io.urls import expand_urls
from xtok_stream.loader import Loader
from xtok_stream.stages.read import DocumentReader


def test_expand_brace_glob_and_prefix(s3, s3_shards):
    shards, _ = s3_shards
    opts = s3.storage_options
    brace = expand_urls(["s3://xtok-test/corpus/shard-{000000..000007}.tar"], opts)
    assert brace == shards
    assert expand_urls(["s3://xtok-test/corpus/*.tar"], opts) == shards
    assert expand_urls(["s3://xtok-test/corpus/"], opts) == shards
    with pytest.raises(SourceError, match="no shards match"):
        expand_urls(["s3://xtok-test/nothing-here/"], opts)


def test_stream_from_s3_equals_local(s3, s3_shards, local_shards):
    s3_urls, texts = s3_shards
    local, _ = local_shards

    def keys_and_ids(urls, opts):
        cfg = load_config({"source": {"urls": urls, "storage_options": opts},
                           "student": {"tokenizer": "pkg:qwen2", "seq_len": 200},
                           "batch_size": 4, "num_lanes": 4, "num_workers": 2})
        batches = list(Loader(cfg))
        return batches

    remote = keys_and_ids(["s3://xtok-test/corpus/"], s3.storage_options)
    here = keys_and_ids(local, {})
    assert [b["input_ids"].tolist() for b in remote] == [b["input_ids"].tolist() for b in here]
    assert_exactly_once([p for b in remote for r in b["pieces"] for p in r], texts)


def test_missing_shard_on_s3_names_url(s3, s3_shards):
    r = DocumentReader(["s3://xtok-test/corpus/missing-000.tar"], lane=0, num_lanes=1, seed=0,
                       epochs=1, storage_options=s3.storage_options)
    with pytest.raises(SourceError, match="s3://xtok-test/corpus/missing-000.tar"):
        next(r)


def test_unreachable_endpoint_names_url():
    opts = {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s",
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}
    r = DocumentReader(["s3://bucket/x-0.tar"], lane=0, num_lanes=1, seed=0, epochs=1,
                       storage_options=opts, retry=RetryConfig(max_attempts=2, base_delay=0.01))
    with pytest.raises(SourceError, match="s3://bucket/x-0.tar"):
        next(r)


def test_convert_parquet_and_jsonl_to_s3(s3, tmp_path, small_docs):
    rows = [{"id": f"doc.{i}", "text": d["txt"]} for i, d in enumerate(small_docs[:30])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    opts = [f"--storage-option={k}={v}" for k, v in
            (("endpoint_url", s3.endpoint), ("key", "testing"), ("secret", "testing"))]
    outs = {}
    for src in ("in.parquet", "in.jsonl"):
        out = f"s3://xtok-test/conv-{src.split('.')[1]}"
        res = subprocess.run(
            [sys.executable, "-m", "xtok_stream", "convert", str(tmp_path / src), "--out", out,
             "--id-field", "id", "--samples-per-shard", "8", *opts],
            capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "wrote 4 shards, 30 samples" in res.stdout
        fs = s3fs.S3FileSystem(**s3.storage_options)
        man = json.loads(fs.cat(f"{out}/manifest.json"))
        assert [s["samples"] for s in man["shards"]] == [8, 8, 8, 6]
        outs[src] = [fs.cat(f"{out}/{s['name']}") for s in man["shards"]]
        docs = list(DocumentReader([f"{out}/{s['name']}" for s in man["shards"]], lane=0,
                                   num_lanes=1, seed=0, epochs=1, shuffle_shards=False,
                                   storage_options=s3.storage_options))
        assert [d.text for d in docs] == [r["text"] for r in rows]
        assert docs[3].key == "doc%2E3"
    assert outs["in.parquet"] == outs["in.jsonl"]  # same records -> byte-identical shards


def test_convert_names_missing_field(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n{"body": "b"}\n')
    res = subprocess.run([sys.executable, "-m", "xtok_stream", "convert", str(tmp_path / "x.jsonl"),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "line 2" in res.stderr and "'text'" in res.stderr and "x.jsonl" in res.stderr
