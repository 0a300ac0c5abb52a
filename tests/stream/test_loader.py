import json
import random

import pytest
import torch

from tests.helpers import assert_exactly_once
from xtok_stream.config import load_config
from xtok_stream.errors import ConfigError, StateError
from xtok_stream.loader import Loader


def config(shards, **over):
    tree = {"source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 250},
            "batch_size": 3, "num_lanes": 6, "seed": 11, "pad_to_multiple_of": 64}
    tree.update(over)
    return load_config(tree)


def run(loader, limit=None):
    out, states = [], []
    for batch in loader:
        out.append(batch)
        states.append(loader.state_dict())
        if limit and len(out) >= limit:
            break
    return out, states


def ledger(batches):
    return [p for b in batches for row in b["pieces"] for p in row]


@pytest.mark.parametrize("workers", [0, 2])
def test_exactly_once_and_batch_schema(local_shards, workers):
    shards, texts = local_shards
    batches, _ = run(Loader(config(shards, num_workers=workers)))
    assert_exactly_once(ledger(batches), texts)
    b = batches[0]
    assert b["input_ids"].shape == (3, 256) and b["input_ids"].dtype == torch.int64
    assert b["doc_ids"].dtype == torch.int32
    for row in range(3):
        n = int(b["input_lengths"][row])
        assert b["attention_mask"][row].sum() == n
        doc = b["doc_ids"][row, :n]
        starts = [0] + [i for i in range(1, n) if doc[i] != doc[i - 1]]
        for s in starts:  # position ids restart at every document piece
            assert b["position_ids"][row, s] == 0
        assert (b["position_ids"][row, 1:n][doc[1:] == doc[:-1]] ==
                b["position_ids"][row, :n - 1][doc[1:] == doc[:-1]] + 1).all()




@pytest.mark.parametrize("workers", [0, 2])
def test_resume_is_bit_identical(local_shards, workers):
    shards, _ = local_shards
    cfg = config(shards, num_workers=workers)
    full, states = run(Loader(cfg))
    rng = random.Random(workers)
    for k in sorted(rng.sample(range(len(full) - 1), 3)):
        state = json.loads(json.dumps(states[k]))
        assert len(json.dumps(state)) < 8000
        loader = Loader(cfg)
        loader.load_state_dict(state)
        rest, _ = run(loader)
        assert len(rest) == len(full) - k - 1
        for a, b in zip(rest, full[k + 1:]):
            assert torch.equal(a["input_ids"], b["input_ids"])
            assert a["pieces"] == b["pieces"]


def test_dataloader_options_do_not_change_the_stream(local_shards):
    """prefetch_factor, persistent_workers and pin_memory are transport settings only."""
    shards, _ = local_shards
    plain, _ = run(Loader(config(shards, num_workers=2)))
    tuned_loader = Loader(config(shards, num_workers=2, prefetch_factor=4,
                                 persistent_workers=True, pin_memory=True))
    tuned, states = run(tuned_loader, limit=4)
    resumed = Loader(config(shards, num_workers=2, prefetch_factor=4, persistent_workers=True,
                            pin_memory=True))
    resumed.load_state_dict(states[-1])
    tuned += run(resumed)[0]
    assert len(tuned) == len(plain)
    for a, b in zip(tuned, plain):
        assert torch.equal(a["input_ids"], b["input_ids"]) and a["pieces"] == b["pieces"]


def test_topology_change_keeps_exactly_once(local_shards):
    """A state saved under 2 workers loads under 1 (lanes regroup): nothing lost or repeated."""
    shards, texts = local_shards
    first, states = run(Loader(config(shards, num_workers=2)), limit=5)
    loader = Loader(config(shards, num_workers=1))
    loader.load_state_dict(states[-1])
    rest, _ = run(loader)
    assert_exactly_once(ledger(first) + ledger(rest), texts)


def test_state_of_another_pipeline_is_refused(local_shards):
    shards, _ = local_shards
    _, states = run(Loader(config(shards)), limit=2)
    other = Loader(config(shards, seed=12))
    with pytest.raises(StateError, match="seed: saved 11 != now 12"):
        other.load_state_dict(states[-1])
    fewer = Loader(config(shards[:-1]))
    with pytest.raises(StateError, match="shards: saved 8 shards != now 7"):
        fewer.load_state_dict(states[-1])
    with pytest.raises(StateError, match="expected a 'xtok_loader' state"):
        other.load_state_dict({"kind": "pack", "v": 1})


def test_streams_forever_with_epochs_null(local_shards):
    shards, texts = local_shards
    batches, _ = run(Loader(config(shards, epochs=None)), limit=60)
    keys = [p[0] for p in ledger(batches)]
    assert len(keys) > len(texts)  # wrapped into the next epoch without stopping


def test_forever_with_idle_consumers_is_an_error(local_shards):
    shards, _ = local_shards
    with pytest.raises(ConfigError, match="never yield"):
        Loader(config(shards[:2], epochs=None, num_workers=3))


def test_a_changed_tokenizer_under_the_same_path_is_refused(local_shards, tmp_path, qwen2):
    """States fingerprint tokenizers by content: a local folder rewritten in place is caught."""
    shards, _ = local_shards
    from xtok_stream.tokenizers import load_tokenizer

    folder = tmp_path / "tok"
    qwen2.save_pretrained(str(folder))
    cfg = config(shards, student={"tokenizer": str(folder), "seq_len": 250})
    _, states = run(Loader(cfg), limit=1)
    tok = load_tokenizer(str(folder))
    tok.add_tokens(["<brand-new-token>"])
    tok.save_pretrained(str(folder))
    load_tokenizer.cache_clear()
    with pytest.raises(StateError, match=r"tokenizer_sha256\."):
        Loader(cfg).load_state_dict(states[-1])
