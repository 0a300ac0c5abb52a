"""The safety net itself: ``check_resume`` must see a difference anywhere in an item (deep inside
a long tensor, in ``PackedSequence.extras``), a restored state that differs from the saved one,
and a state whose nested shape changes; and it covers LaneMux and Batcher on real shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtok_stream.config import load_config
from xtok_stream.pipeline import build_consumer
from xtok_stream.records import PackedSequence, Piece
from xtok_stream.testing import canonical, check_resume


class Counting:
    """A toy stage yielding ``n`` items built by ``make(i, restored)``; its state is
    ``{"i": next index}`` (``state`` can be overridden to break the contract)."""

    def __init__(self, n, make, state=None):
        self.n, self.make, self.i, self.restored = n, make, 0, False
        self.state = state or (lambda s: {"kind": "count", "v": 1, "i": s.i})

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= self.n:
            raise StopIteration
        self.i += 1
        return self.make(self.i - 1, self.restored)

    def state_dict(self):
        return self.state(self)

    def load_state_dict(self, state):
        self.i, self.restored = state["i"], True

    def close(self):
        pass


def test_a_difference_deep_in_a_long_tensor_is_seen():
    def make(i, restored):
        t = torch.zeros((3, 4096), dtype=torch.int64)
        if restored and i == 2:
            t[1, 3000] = 1  # str(t) shows "..." here: a str() comparison would miss it
        return {"input_ids": t}

    assert str(make(2, True)["input_ids"]) == str(make(2, False)["input_ids"])
    with pytest.raises(AssertionError, match="diverges at item 2"):
        check_resume(lambda: Counting(4, make))


def test_dtype_and_shape_count_not_only_bytes():
    a = np.zeros(4, np.int32)
    assert canonical(a) != canonical(a.view(np.float32))
    assert canonical(a) != canonical(a.reshape(2, 2))
    assert canonical(torch.zeros(2)) != canonical(torch.zeros(2, dtype=torch.float64))


def test_packed_sequence_extras_are_compared():
    def make(i, restored):
        seq = PackedSequence(np.arange(8), 8, [Piece("k", 0, 3, 0, 8, True)], ["abc"])
        seq.extras["teacher"] = {"input_ids": np.arange(16) + (1 if restored and i == 1 else 0)}
        return seq

    with pytest.raises(AssertionError, match="diverges at item 1"):
        check_resume(lambda: Counting(3, make))


def test_restored_state_must_equal_the_saved_one():
    def state(s):  # forgets that it was restored mid-way: reports a fresh cursor
        return {"kind": "count", "v": 1, "i": s.i if not s.restored else 0}

    with pytest.raises(AssertionError, match="restored state at step 1 differs"):
        check_resume(lambda: Counting(3, lambda i, r: i, state))


def test_state_shape_must_stay_constant():
    def state(s):  # a field changes type mid-run
        return {"kind": "count", "v": 1, "i": s.i if s.i < 2 else str(s.i)}

    with pytest.raises(AssertionError, match="state shape changed at step 2"):
        check_resume(lambda: Counting(3, lambda i, r: i, state))


def _consumer_config(shards, **over):
    tree = {"source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 256},
            "teachers": [{"tokenizer": "pkg:mistral-v3", "max_len": 300}],
            "num_lanes": 3, "batch_size": 3, "seed": 4, "shuffle": {"buffer": 3}, "epochs": 1}
    tree.update(over)
    return load_config(tree)


def test_mux_and_batcher_resume_at_every_step(local_shards):
    """A whole consumer (three lanes muxed, batched with a teacher's tensors) restored at every
    batch gives the same batches: every tensor, the teachers' COO lists and the pieces."""
    shards, _ = local_shards
    cfg = _consumer_config(shards[:3])
    items = check_resume(lambda: build_consumer(cfg, shards[:3]).source, every=3)
    assert len(items) > 10  # the mux alone (sequences from three lanes)
    batches = check_resume(lambda: build_consumer(cfg, shards[:3]), every=2)
    assert len(batches) > 3
