import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import assert_exactly_once
from xtok_stream.records import Document
from xtok_stream.stages.pack import Packer
from xtok_stream.stages.read import DocumentReader
from xtok_stream.stages.shuffle import Shuffler
from xtok_stream.testing import check_resume


class ListSource:
    """An in-memory document stage (cursor = index) for property tests."""

    def __init__(self, texts):
        self.texts, self.i = texts, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= len(self.texts):
            raise StopIteration
        self.i += 1
        return Document(f"d{self.i - 1}", self.texts[self.i - 1], "mem", row=self.i - 1)

    def state_dict(self):
        return {"kind": "list", "v": 1, "i": self.i}

    def load_state_dict(self, s):
        self.i = s["i"]

    def close(self):
        pass


def check_packing(seqs, texts_by_key, order, tok, seq_len):
    eos = tok.eos_token_id
    expected = []
    for key in order:
        expected += tok.backend_tokenizer.encode(texts_by_key[key], add_special_tokens=False).ids
        expected.append(eos)
    got = np.concatenate([s.input_ids[: s.length] for s in seqs])
    assert got.tolist() == expected, "tokens dropped, duplicated or reordered"
    assert all(s.length == seq_len for s in seqs[:-1])
    assert all(len(s.input_ids) == seq_len for s in seqs)
    ledger = [p for s in seqs for p in s.ledger()]
    assert_exactly_once(ledger, {k: texts_by_key[k] for k in order})
    for s in seqs:
        pos = 0
        for p, text in zip(s.pieces, s.texts):
            assert p.token_start == pos and p.token_end > p.token_start
            pos = p.token_end
            assert text == texts_by_key[p.key][p.char_start:p.char_end]
            if p.ends_document:  # ... then its last token is the EOS
                assert s.input_ids[p.token_end - 1] == eos
        assert pos == s.length


@pytest.mark.parametrize("tok_name", ["qwen2", "mistral"])
def test_packs_real_shards_exactly(tok_name, request, local_shards):
    tok = request.getfixturevalue(tok_name)
    shards, texts = local_shards
    reader = DocumentReader(shards, lane=0, num_lanes=1, seed=1, epochs=1)
    order = [d.key for d in DocumentReader(shards, lane=0, num_lanes=1, seed=1, epochs=1)]
    spec = {"qwen2": "pkg:qwen2", "mistral": "pkg:mistral-v3"}[tok_name]
    seqs = list(Packer(reader, tokenizer=spec, seq_len=512))
    check_packing(seqs, texts, order, tok, 512)


TEXT = st.text(
    alphabet=st.sampled_from(list("ab c\n\t  _-.é日本語🤖👨‍👩‍👧Ãд")) , min_size=0, max_size=120)


@given(texts=st.lists(TEXT, min_size=1, max_size=8), seq_len=st.integers(2, 40))
@settings(max_examples=60, deadline=None)
def test_packing_property(qwen2, texts, seq_len):
    seqs = list(Packer(ListSource(texts), tokenizer="pkg:qwen2", seq_len=seq_len))
    check_packing(seqs, {f"d{i}": t for i, t in enumerate(texts)},
                  [f"d{i}" for i in range(len(texts))], qwen2, seq_len)


def test_pack_resumes_at_every_step_across_epochs(local_shards):
    shards, _ = local_shards

    def make():
        r = DocumentReader(shards[:4], lane=1, num_lanes=2, seed=2, epochs=2)
        return Packer(r, tokenizer="pkg:qwen2", seq_len=300)

    items = check_resume(make, max_state_bytes=600)
    assert len(items) > 20


def test_shuffle_is_a_deterministic_permutation_and_resumes(local_shards):
    shards, texts = local_shards

    def make(seed=3):
        r = DocumentReader(shards, lane=0, num_lanes=1, seed=seed, epochs=1, shuffle_shards=False)
        return Shuffler(r, size=7, seed=seed, lane=0)

    keys = [d.key for d in make()]
    plain = [d.key for d in DocumentReader(shards, lane=0, num_lanes=1, seed=3, epochs=1,
                                           shuffle_shards=False)]
    assert sorted(keys) == sorted(plain) and keys != plain
    assert keys == [d.key for d in make()]
    assert keys != [d.key for d in make(seed=4)]
    check_resume(make, max_state_bytes=1500)

    def packed():
        return Packer(make(), tokenizer="pkg:qwen2", seq_len=400)

    check_resume(packed, every=3)
