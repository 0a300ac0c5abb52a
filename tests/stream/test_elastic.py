"""Elastic resume in-process: ranks are Loaders with explicit rank/world_size (what torchrun gives
each process), so many topologies can be checked quickly; the CLI tests do the same under torchrun."""

import json
import random

import pytest

from tests.helpers import assert_exactly_once
from xtok_stream.config import load_config
from xtok_stream.dist.loader import Loader, merge_states
from xtok_stream.errors import StateError


def config(shards, workers):
    return load_config({
        "source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 200},
        "batch_size": 2, "num_lanes": 6, "seed": 9, "num_workers": workers,
        "shuffle": {"buffer": 3}})


def hashes_and_pieces(batches):
    seqs, pieces = [], []
    for b in batches:
        for row in range(b["input_ids"].shape[0]):
            if b["sample_mask"][row]:
                n = int(b["input_lengths"][row])
                seqs.append(tuple(b["input_ids"][row, :n].tolist()))
                pieces += b["pieces"][row]
    return seqs, pieces


def run_topology(shards, world, workers, states=None, limit=None):
    """Each rank's batches (up to ``limit``) and its local state after them."""
    out = []
    for rank in range(world):
        loader = Loader(config(shards, workers), rank=rank, world_size=world)
        if states is not None:
            loader.load_state_dict(states)
        got = []
        for b in loader:
            got.append(b)
            if limit is not None and len(got) >= limit:
                break
        out.append((got, loader.state_dict()))
    return out


def test_packed_sequences_do_not_depend_on_the_topology(local_shards):
    shards, texts = local_shards
    multisets = []
    for world, workers in [(1, 0), (2, 2), (3, 1), (1, 3)]:
        batches = [b for got, _ in run_topology(shards, world, workers) for b in got]
        seqs, pieces = hashes_and_pieces(batches)
        assert_exactly_once(pieces, texts)
        multisets.append(sorted(seqs))
    assert all(m == multisets[0] for m in multisets[1:])


@pytest.mark.parametrize("to", [(1, 3), (3, 1), (2, 2)])
def test_save_under_2x2_resume_under_any_topology(local_shards, to):
    shards, texts = local_shards
    k = random.Random(str(to)).randint(1, 6)  # a random step, with half-packed documents
    first = run_topology(shards, 2, 2, limit=k)
    state = json.loads(json.dumps(merge_states([s for _, s in first])))
    assert len(json.dumps(state)) < 16_000
    before = [b for got, _ in first for b in got]
    after = [b for got, _ in run_topology(shards, *to, states=state) for b in got]
    _, p_before = hashes_and_pieces(before)
    _, p_after = hashes_and_pieces(after)
    assert_exactly_once(p_before + p_after, texts)


def test_merge_refuses_states_of_different_pipelines(local_shards):
    shards, _ = local_shards
    a = Loader(config(shards, 0), rank=0, world_size=2).state_dict()
    b = Loader(config(shards[:-1], 0), rank=1, world_size=2).state_dict()
    with pytest.raises(StateError, match="fingerprint"):
        merge_states([a, b])


def test_state_for_1000_shards_stays_small(tmp_path):
    """Positions, not data: a state over 1,000 shards (64 lanes, every lane mid-shard with a
    shuffle buffer of 16) stays under 64 KiB."""
    urls = [f"s3://bucket/corpus/shard-{i:06d}.tar" for i in range(1000)]
    cfg = load_config({"source": {"urls": urls}, "student": {"tokenizer": "pkg:qwen2"},
                       "num_lanes": 64, "shuffle": {"buffer": 16}})
    loader = Loader(cfg, shards=urls)
    lane = {"kind": "pack", "v": 1, "skip": 1234, "source": {
        "kind": "shuffle", "v": 1, "counter": 987654,
        "buffer": [[3, 15, 123456789 + i * 4096] for i in range(16)],
        "source": {"kind": "read", "v": 2, "epoch": 3, "slot": 15, "offset": 123456789,
                   "part": 0, "part_chars": 0,
                   "skipped": dict.fromkeys(["corrupt_shard", "missing_field", "invalid_utf8",
                                             "empty_document", "huge_document"], 0)}}}
    loader._lanes = {str(i): lane for i in range(64)}
    blob = json.dumps(loader.state_dict())
    assert len(blob) < 64 * 1024, len(blob)
