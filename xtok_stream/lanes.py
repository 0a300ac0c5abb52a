"""Lanes: virtual partitions that make the packed stream independent of the topology.

There are ``num_lanes`` lanes, fixed by the config. In epoch ``e`` the shard list is permuted by
``(seed, e)`` and lane ``l`` takes every ``num_lanes``-th shard of it starting at ``l``; each lane
is then its own deterministic stream shards -> documents -> packed sequences. Ranks and DataLoader
workers only *own* lanes, so the same sequences come out whatever world size and worker count
read them::

    shards (epoch 0, permuted):  s7 s2 s5 s0 s3 s6 s1 s4       num_lanes = 4
    lane 0: s7 s3   lane 1: s2 s6   lane 2: s5 s1   lane 3: s0 s4
    2 ranks x 1 worker -> consumer 0 owns lanes 0,2; consumer 1 owns lanes 1,3

Everything here is a pure function of its arguments (no env vars, no torch globals).
"""

from __future__ import annotations

import numpy as np


def epoch_order(num_shards: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(num_shards)
    return np.random.default_rng([seed, epoch, 0x5A4D]).permutation(num_shards)


def lane_shards(
    num_shards: int, num_lanes: int, lane: int, seed: int, epoch: int, shuffle: bool
) -> list[int]:
    """Indices (into the shard list) that ``lane`` reads in ``epoch``, in order."""
    return [int(i) for i in epoch_order(num_shards, seed, epoch, shuffle)[lane::num_lanes]]


def consumer_index(rank: int, worker: int, num_workers: int) -> int:
    return rank * max(1, num_workers) + worker


def num_consumers(world_size: int, num_workers: int) -> int:
    return world_size * max(1, num_workers)


def consumer_lanes(consumer: int, consumers: int, num_lanes: int) -> list[int]:
    """Lanes owned by one consumer (a (rank, worker) pair): round-robin, disjoint, complete."""
    return list(range(consumer, num_lanes, consumers))


def splitmix64(x: int) -> int:
    """Counter-based randomness: a function of (seed, lane, counter), never of pid or time."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def draw(seed: int, lane: int, counter: int, n: int) -> int:
    """Uniform-ish integer in [0, n) for draw number ``counter`` of ``lane``."""
    return splitmix64(splitmix64(splitmix64(seed) ^ lane) ^ counter) % n
