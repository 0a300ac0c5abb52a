"""Text-space alignment across tokenizer families (issue 11): coverage exactly once, no exact
chunk whose two sides cover different original text (oracle from the tokenizers' own offsets),
and exact chunks >= 99 % of the text-space shared-boundary bound, for every ordered pair."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from align_checks import ALPHABET, FRAGMENTS, check_partition
from families import HELD_OUT, held_out
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from text_oracle import encode_docs, exact_bound, exact_text_chunks, false_exact

from xtok_stream.align import Aligner

BASE = ("qwen2", "deepseek", "mistral")
FAMILIES = BASE + HELD_OUT


@pytest.fixture(scope="module")
def fam_toks(toks):
    return {**{k: toks[k] for k in BASE}, **{k: held_out(k) for k in HELD_OUT}}


@pytest.fixture(scope="module")
def fam_aligners(fam_toks):
    cache = {}

    def get(s, t):
        if (s, t) not in cache:
            cache[s, t] = Aligner(fam_toks[s], fam_toks[t]).warmup()
        return cache[s, t]

    return get


@pytest.fixture(scope="module")
def samples(small_docs):
    """6 samples of 4 documents each (stdlib prose/code + multilingual), joined with EOS."""
    docs = [d["txt"][:1200] for d in small_docs[::3][:24]]
    return [docs[k : k + 4] for k in range(0, 24, 4)]


@pytest.fixture(scope="module")
def encoded(fam_toks, samples):
    """encoded(family, k) -> (text, Encoded) of sample k, once."""
    cache = {}

    def get(name, k):
        if (name, k) not in cache:
            cache[name, k] = encode_docs(fam_toks[name], samples[k])
        return cache[name, k]

    return get


def _check(al, text, s, t, s_tok, t_tok) -> tuple[int, int]:
    check_partition(al)
    assert al.metrics.text_space
    assert false_exact(text, s, t, al) == []
    return exact_text_chunks(al, s), exact_bound(text, s, t, s_tok, t_tok)


def test_table_modes_are_reported(fam_toks, fam_aligners):
    modes = {k: fam_aligners("qwen2", k).modes["teacher"] for k in FAMILIES}
    assert modes == {
        "qwen2": "byte_level", "deepseek": "byte_level", "mistral": "sentencepiece",
        "cl100k": "byte_level", "qwen2-nfkc": "byte_level-lossy",
        "wordpiece-uncased": "wordpiece-lossy", "bpe-eow": "bpe_suffix-lossy",
        "unigram": "sentencepiece-lossy", "unigram-unk-eos": "sentencepiece-lossy",
    }  # fmt: skip


@pytest.mark.parametrize("student", FAMILIES)
def test_every_pair_exact_means_same_text(student, fam_toks, fam_aligners, samples, encoded):
    for teacher in FAMILIES:
        if teacher == student:
            continue
        a = fam_aligners(student, teacher)
        exact = bound = 0
        for k in range(len(samples)):
            text, s = encoded(student, k)
            _, t = encoded(teacher, k)
            al = a.align_text(text, s.ids, t.ids, s.offsets, t.offsets)
            e, b = _check(al, text, s, t, fam_toks[student], fam_toks[teacher])
            exact, bound = exact + e, bound + b
        assert exact >= 0.99 * bound, (student, teacher, exact, bound)


_TEXT = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS + ["<unk>", "<s>", "</s>", "[UNK]", "##ing", "</w>",
                                           "ﬁ ½ Ⅻ", "ＡＢＣ", " leading", "  "]),
              st.text(alphabet=ALPHABET, max_size=10)),
    max_size=12,
).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT, pair=st.sampled_from(list(itertools.permutations(FAMILIES, 2))))
def test_random_text_never_false_exact(text, pair, fam_toks, fam_aligners):
    s_name, t_name = pair
    _, s = encode_docs(fam_toks[s_name], [text])
    _, t = encode_docs(fam_toks[t_name], [text])
    al = fam_aligners(s_name, t_name).align_text(text, s.ids, t.ids, s.offsets, t.offsets)
    check_partition(al)
    assert false_exact(text, s, t, al) == []


def test_offsets_default_from_lossless_table_or_reencoding(fam_toks, fam_aligners):
    """Left out, offsets come from the student's lossless table or a re-encoding, with the
    same chunks as the explicit offsets."""
    text = "Hello  wörld\n\tdef f(x): return x_1  # ﬁne"
    for s_name, t_name in (("qwen2", "wordpiece-uncased"), ("mistral", "unigram")):
        _, s = encode_docs(fam_toks[s_name], [text])
        _, t = encode_docs(fam_toks[t_name], [text])
        a = fam_aligners(s_name, t_name)
        want = a.align_text(text, s.ids, t.ids, s.offsets, t.offsets)
        got = a.align_text(text, s.ids[:-1], t.ids[:-1])  # no EOS: plain encodings
        assert got.student_spans.tolist() == want.student_spans[: len(got)].tolist()
        assert got.exact.tolist() == want.exact[: len(got)].tolist()


def test_ids_that_are_not_the_texts_encoding_need_offsets(fam_toks, fam_aligners):
    from xtok_stream.errors import ConfigError

    a = fam_aligners("qwen2", "wordpiece-uncased")
    t_ids = fam_toks["wordpiece-uncased"]("other words", add_special_tokens=False)["input_ids"]
    s_ids = fam_toks["qwen2"]("Hello", add_special_tokens=False)["input_ids"]
    with pytest.raises(ConfigError, match="teacher_offsets are needed.*wordpiece-lossy"):
        a.align_text("Hello", s_ids, t_ids)
    with pytest.raises(ConfigError, match="teacher_offsets has 1 .* for 2"):
        a.align_text("Hello", s_ids, t_ids, None, [(0, 5)])


def test_family_tokens_read_as_text_in_their_tables(fam_toks):
    """## and </w> are markers, not bytes (cases 5, 6); SentencePiece without byte fallback
    reads ▁ as a space (case 1: once three literal bytes)."""
    from xtok_stream.align import byte_table

    wp, eow, uni = (byte_table(fam_toks[k]) for k in ("wordpiece-uncased", "bpe-eow", "unigram"))
    ids = fam_toks["wordpiece-uncased"]("hello playing", add_special_tokens=False)["input_ids"]
    assert wp.family == "wordpiece" and b"##" not in wp.ids_bytes(ids)
    ids = fam_toks["bpe-eow"]("hello world", add_special_tokens=False)["input_ids"]
    assert eow.family == "bpe_suffix" and eow.ids_bytes(ids) == b"hello world "
    ids = fam_toks["unigram"]("hello world", add_special_tokens=False)["input_ids"]
    assert uni.family == "sentencepiece" and uni.dummy_prefix
    assert uni.ids_bytes(ids) == b" hello world" and "▁".encode() not in uni.ids_bytes(ids)
    assert np.all(uni.role[[fam_toks["unigram"].unk_token_id]] == 4)
