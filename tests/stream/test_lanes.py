from hypothesis import given, settings
from hypothesis import strategies as st

from xtok_stream.lanes import (
    consumer_index,
    consumer_lanes,
    draw,
    lane_shards,
    num_consumers,
)


@given(shards=st.integers(0, 60), lanes=st.integers(1, 20), seed=st.integers(0, 9),
       epoch=st.integers(0, 3), shuffle=st.booleans())
@settings(max_examples=200, deadline=None)
def test_lanes_partition_the_shards_every_epoch(shards, lanes, seed, epoch, shuffle):
    got = [i for lane in range(lanes) for i in lane_shards(shards, lanes, lane, seed, epoch, shuffle)]
    assert sorted(got) == list(range(shards))


@given(world=st.integers(1, 6), workers=st.integers(0, 5), lanes=st.integers(1, 40))
@settings(max_examples=200, deadline=None)
def test_consumers_own_disjoint_complete_lane_sets(world, workers, lanes):
    C = num_consumers(world, workers)
    owned = [consumer_lanes(consumer_index(r, w, workers), C, lanes)
             for r in range(world) for w in range(max(1, workers))]
    flat = [lane for o in owned for lane in o]
    assert sorted(flat) == list(range(lanes))


def test_shard_order_depends_on_seed_and_epoch_only():
    a = lane_shards(100, 4, 1, seed=3, epoch=0, shuffle=True)
    assert a == lane_shards(100, 4, 1, seed=3, epoch=0, shuffle=True)
    assert a != lane_shards(100, 4, 1, seed=3, epoch=1, shuffle=True)
    assert a != lane_shards(100, 4, 1, seed=4, epoch=0, shuffle=True)
    assert lane_shards(10, 4, 1, 0, 0, shuffle=False) == [1, 5, 9]


def test_draw_is_counter_based_and_in_range():
    xs = [draw(7, 2, c, 10) for c in range(1000)]
    assert xs == [draw(7, 2, c, 10) for c in range(1000)]
    assert set(xs) == set(range(10))
    assert xs != [draw(7, 3, c, 10) for c in range(1000)]
