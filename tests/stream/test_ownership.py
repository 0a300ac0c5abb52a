"""Each stage owns its envelope: the loader splits and merges consumer states through
``pipeline.py`` (Batcher/LaneMux classmethods), gets its padding batch from the Batcher and computes
lane ownership once; renamed persisted fields are refused by name."""

from __future__ import annotations

import json

import pytest

from tests.stream.test_loader import config, run
from xtok_stream.errors import StateError
from xtok_stream.lanes import consumer_lanes
from xtok_stream.loader import Loader
from xtok_stream.pipeline import build_consumer, consumer_state, empty_batch, split_consumer_state
from xtok_stream.stages.batch import Batcher
from xtok_stream.stages.mux import LaneMux
from xtok_stream.testing import canonical


def test_consumer_state_splits_and_merges_losslessly(local_shards):
    shards, _ = local_shards
    cfg = config(shards)
    lanes = consumer_lanes(1, 2, cfg.num_lanes)
    stream = build_consumer(cfg, shards, lanes)
    for _ in range(4):
        next(stream)
    state = json.loads(json.dumps(stream.state_dict()))
    next_lane, per_lane = split_consumer_state(state)
    assert sorted(per_lane) == [str(lane) for lane in lanes]
    assert 0 <= next_lane < len(lanes)
    assert consumer_state(per_lane, next_lane) == state
    # the merged state restores a fresh consumer to the same continuation
    again = build_consumer(cfg, shards, lanes)
    again.load_state_dict(consumer_state(per_lane, next_lane))
    assert canonical(next(again)) == canonical(next(stream))
    stream.close(), again.close()


def test_empty_batch_needs_no_lane_and_matches_the_consumers(local_shards):
    shards, _ = local_shards
    cfg = config(shards)
    pad = empty_batch(cfg)  # built from the config alone: no shard list at all
    real = build_consumer(cfg, shards).empty_batch()
    assert canonical(pad) == canonical(real)
    assert pad["sample_mask"].sum() == 0 and pad["input_ids"].shape == (3, 256)


def test_mux_v1_state_with_rr_is_refused_naming_the_field():
    with pytest.raises(StateError, match=r"^rr: 'mux' v1 state .*'next_lane'"):
        LaneMux.split_state({"kind": "mux", "v": 1, "rr": 0, "lanes": {}})
    with pytest.raises(StateError, match=r"^source\.rr: 'mux' v1"):
        split_consumer_state(Batcher.wrap({"kind": "mux", "v": 1, "rr": 0, "lanes": {}}))
    with pytest.raises(StateError, match=r"^next_lane: must be an integer"):
        LaneMux.split_state(LaneMux.merge_state({}, "1"))


def test_loader_v2_state_with_rr_is_refused_naming_the_field(local_shards):
    shards, _ = local_shards
    loader = Loader(config(shards, num_workers=2))
    _, states = run(loader, limit=3)
    state = states[-1]
    assert state["v"] == 3 and set(state["ranks"]["0"]) == {"next_worker", "next_lane"}
    old = dict(state, v=2, ranks={"0": {"next_worker": 1, "rr": state["ranks"]["0"]["next_lane"]}})
    with pytest.raises(StateError, match=r"ranks\.\*\.rr: .*renamed 'next_lane'"):
        Loader(config(shards, num_workers=2)).load_state_dict(old)
    bad = json.loads(json.dumps(state))
    bad["ranks"]["0"]["next_lane"]["1"] = 99  # worker 1 owns 3 of the 6 lanes
    with pytest.raises(StateError, match=r"ranks\.0\.next_lane\.1: 99 is out of range"):
        Loader(config(shards, num_workers=2)).load_state_dict(bad)

