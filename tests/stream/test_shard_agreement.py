"""All ranks train on one shard list: rank 0 lists ``source.urls`` and broadcasts it, explicit
lists are checked across ranks, and a state from another shard list is refused naming the
shards that differ. Real 2-rank gloo groups, a shard appearing between two listings."""

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from tests.helpers import assert_exactly_once
from xtok_stream.config import load_config
from xtok_stream.errors import StateError
from xtok_stream.io.shards import write_shards
from xtok_stream.loader import Loader


def _tree(prefix):
    return {"source": {"urls": [prefix]}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 128},
            "batch_size": 2, "num_lanes": 4, "seed": 5}


def _rank(rank, init, prefix, extra_docs, out):
    import torch.distributed as dist

    import xtok_stream.loader as loader_mod

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    extra = Path(prefix) / "shard-000001x.tar"
    if rank == 0:  # a shard lands in the prefix right after rank 0's listing
        real = loader_mod.source_urls

        def listing_then_upload(*args, **kwargs):
            found = real(*args, **kwargs)
            write_shards(extra_docs, str(Path(prefix) / "tmp-extra"), samples_per_shard=100)
            (Path(prefix) / "tmp-extra" / "shard-000000.tar").rename(extra)
            return found

        loader_mod.source_urls = listing_then_upload
    else:
        deadline = time.monotonic() + 120
        while not extra.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    result = {}
    try:
        loader = Loader(load_config(_tree(prefix + "/")))
        result["shards"] = loader.shards
        result["pieces"] = [p for b in loader for row in b["pieces"] for p in row]
        # lists passed in explicitly: rank 1 knows one shard more than rank 0
        mine = sorted(str(p) for p in Path(prefix).glob("*.tar"))
        if rank == 0:
            mine.remove(str(extra))
        try:
            Loader(load_config(_tree(prefix + "/")), shards=mine)
            result["explicit"] = "accepted"
        except Exception as exc:  # reported to the test
            result["explicit"] = f"{type(exc).__name__}: {exc}"
    finally:
        Path(out).write_text(json.dumps(result))
        dist.destroy_process_group()


@pytest.fixture()
def corpus(tmp_path, small_docs):
    prefix = tmp_path / "corpus"
    write_shards(small_docs[:40], str(prefix), samples_per_shard=10)
    return str(prefix), {d["__key__"]: d["txt"] for d in small_docs[:40]}, small_docs[40:50]


def test_ranks_train_on_rank_0s_listing_when_a_shard_appears(tmp_path, corpus):
    prefix, texts, extra_docs = corpus
    ctx = mp.get_context("spawn")
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [ctx.Process(target=_rank, args=(r, tmp_path / "init", prefix, extra_docs, outs[r]))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    res = [json.loads(o.read_text()) for o in outs]
    assert res[0]["shards"] == res[1]["shards"]
    assert len(res[0]["shards"]) == 4 and not any("000001x" in u for u in res[0]["shards"])
    assert_exactly_once(res[0]["pieces"] + res[1]["pieces"], texts)
    for r in res:  # explicit lists that differ are refused on every rank, naming the shard
        assert r["explicit"].startswith("SourceError: ranks disagree on the shard list")
        assert "shard-000001x.tar" in r["explicit"]


def test_state_of_another_shard_list_names_the_new_shard(tmp_path, corpus):
    prefix, _, extra_docs = corpus
    loader = Loader(load_config(_tree(prefix + "/")))
    next(iter(loader))
    state = loader.state_dict()
    write_shards(extra_docs, str(tmp_path / "more"), samples_per_shard=100)
    (tmp_path / "more" / "shard-000000.tar").rename(Path(prefix) / "shard-000001x.tar")
    with pytest.raises(StateError, match=r"saved 4 shards != now 5 \(only in now: \[.*000001x"):
        Loader(load_config(_tree(prefix + "/"))).load_state_dict(json.loads(json.dumps(state)))
