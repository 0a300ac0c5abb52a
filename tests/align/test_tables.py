"""ByteTable: token id -> canonical bytes for byte-level BPE and SentencePiece, roles, caching."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from align_checks import ALPHABET, FRAGMENTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtok_stream.align import ByteTable, Role, byte_table
from xtok_stream.align.tables import build_byte_table
from xtok_stream.errors import ConfigError

texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=ALPHABET, max_size=10)), max_size=8
).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_table_bytes_reproduce_text(text, qwen2, deepseek, mistral):
    """Concatenated table bytes of the encoding = the text's UTF-8 (after each tokenizer's
    normaliser; SentencePiece adds its dummy-prefix space unless the text starts with one)."""
    q = byte_table(qwen2).ids_bytes(qwen2.encode(text, add_special_tokens=False))
    assert q == unicodedata.normalize("NFC", text).encode()
    d = byte_table(deepseek).ids_bytes(deepseek.encode(text, add_special_tokens=False))
    assert d == text.encode()
    m = byte_table(mistral).ids_bytes(mistral.encode(text, add_special_tokens=False))
    expect = text.encode() if (text.startswith(" ") or not text) else b" " + text.encode()
    assert m == expect


def test_families_and_known_tokens(qwen2, deepseek, mistral):
    tq, td, tm = byte_table(qwen2), byte_table(deepseek), byte_table(mistral)
    assert (tq.family, tq.dummy_prefix) == ("byte_level", False)
    assert (td.family, td.dummy_prefix) == ("byte_level", False)
    assert (tm.family, tm.dummy_prefix) == ("sentencepiece", True)
    for tab, tok in ((tq, qwen2), (td, deepseek)):
        assert tab.vocab_size == len(tok)
        for piece, raw in (("Ġ", b" "), ("Ċ", b"\n"), ("ĉ", b"\t"), ("č", b"\r"), ("Ġ__", b" __")):
            assert tab.token_bytes(tok.convert_tokens_to_ids(piece)) == raw
    assert tq.token_bytes(qwen2.convert_tokens_to_ids("Ãĥ")) == "Ã".encode()
    assert tm.vocab_size == len(mistral)
    for piece, raw in (("<0xF0>", b"\xf0"), ("<0x0A>", b"\n"), ("▁▁", b"  "), ("▁Hello", b" Hello"),
                       ("Ã", "Ã".encode()), ("日", "日".encode())):
        assert tm.token_bytes(mistral.convert_tokens_to_ids(piece)) == raw
    # byte fallback pieces are exactly the 256 single bytes
    fb = [mistral.convert_tokens_to_ids(f"<0x{b:02X}>") for b in range(256)]
    assert [tm.token_bytes(i) for i in fb] == [bytes([b]) for b in range(256)]
    # the arrays are flat and numba-ready
    for tab in (tq, td, tm):
        assert tab.offsets.dtype == np.int64 and tab.lengths.dtype == np.int32
        assert tab.buf.dtype == np.uint8 and tab.role.dtype == np.int8
        assert int((tab.offsets + tab.lengths).max()) <= len(tab.buf)


def test_roles_and_special_keys(qwen2, deepseek, mistral):
    tq, td, tm = byte_table(qwen2), byte_table(deepseek), byte_table(mistral)
    role = lambda tab, tok, s: Role(int(tab.role[tok.convert_tokens_to_ids(s)]))
    assert role(tq, qwen2, "<|endoftext|>") is Role.EOS  # also qwen2's pad: EOS wins
    assert role(tq, qwen2, "<|im_start|>") is Role.CONTROL
    assert role(td, deepseek, "<｜begin▁of▁sentence｜>") is Role.BOS
    assert role(td, deepseek, "<｜end▁of▁sentence｜>") is Role.EOS
    assert role(td, deepseek, "<｜▁pad▁｜>") is Role.PAD
    assert role(tm, mistral, "<s>") is Role.BOS
    assert role(tm, mistral, "</s>") is Role.EOS
    assert role(tm, mistral, "<unk>") is Role.UNK
    assert role(tm, mistral, "[INST]") is Role.CONTROL
    for tab, tok in ((tq, qwen2), (td, deepseek), (tm, mistral)):
        special = [i for i, a in tok.added_tokens_decoder.items() if a.special]
        assert (tab.lengths[special] == 0).all() and (tab.role[special] != Role.TEXT).all()
        assert (tab.role[tab.lengths > 0] == Role.TEXT).all()
    # BOS/EOS pair across tokenizers by role, control tokens only by equal content
    key = lambda tab, tok, s: int(tab.special_key[tok.convert_tokens_to_ids(s)])
    assert (key(td, deepseek, "<｜end▁of▁sentence｜>") == key(tm, mistral, "</s>")
            == key(tq, qwen2, "<|endoftext|>"))
    assert key(td, deepseek, "<｜begin▁of▁sentence｜>") == key(tm, mistral, "<s>")
    assert key(tq, qwen2, "<|im_start|>") != key(tq, qwen2, "<|im_end|>")
    assert key(tq, qwen2, "<|im_start|>") not in (key(tm, mistral, "[INST]"), key(tm, mistral, "</s>"))
    # non-special added tokens are literal text
    assert td.token_bytes(deepseek.convert_tokens_to_ids("<think>")) == b"<think>"
    assert tm.token_bytes(mistral.convert_tokens_to_ids("[REFERENCE_DOC_1]")) == b"[REFERENCE_DOC_1]"


def test_cached_per_process(qwen2):
    # build time is a benchmark goal (benchmarks/bench_align.py), not a unit-test assertion
    assert byte_table(qwen2) is byte_table(qwen2)
    assert byte_table("pkg:qwen2") is byte_table("pkg:qwen2")
    fresh = build_byte_table(qwen2)
    assert fresh is not byte_table(qwen2)
    assert np.array_equal(fresh.lengths, byte_table(qwen2).lengths)


def test_tokenizer_without_fast_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="fast tokenizer"):
        build_byte_table(object())


def test_byte_level_with_prefix_space_sets_dummy_prefix():
    """A byte-level tokenizer that prepends a space (RoBERTa style) is flagged like SentencePiece."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    tab = byte_table(tok)
    assert isinstance(tab, ByteTable) and tab.family == "byte_level" and tab.dummy_prefix
    assert tab.ids_bytes(tok.encode("hi", add_special_tokens=False)) == b" hi"
