"""Regression tests for the numbered cases of issue 11, each on real tokenizers. The byte-mode
(ids only) lines show what went wrong before; text mode (``align_text``) is the fix."""

from __future__ import annotations

import numpy as np
import pytest
from align_checks import check_partition
from families import held_out, held_out_path
from text_oracle import encode_docs, false_exact

from xtok_stream.align import Aligner, UnalignedReason


@pytest.fixture(scope="module")
def nfkc():
    return held_out("qwen2-nfkc")


def _both(a: Aligner, text: str):
    _, s = encode_docs(a.student_tokenizer, [text])
    _, t = encode_docs(a.teacher_tokenizer, [text])
    return s, t, a.align_text(text, s.ids, t.ids, s.offsets, t.offsets), a.align(s.ids, t.ids)


def test_case2_end_of_stream_is_no_agreement(qwen2, nfkc):
    """A divergence within the resync window of the end: the walk once 'resynced' at the
    student's end on zero bytes and dropped the teacher's real rest as a truncated tail."""
    a = Aligner(qwen2, nfkc)
    text = "numbers and words go on for a while here, then ﬁ ½ end"
    s, t, at, ab = _both(a, text)
    for al in (ab, at):
        check_partition(al)
        assert UnalignedReason.TRUNCATED_TAIL not in [r for _, r in al.unaligned("teacher")]
        assert al.student_spans[-1, 1] == len(s.ids) and al.teacher_spans[-1, 1] == len(t.ids)
    assert false_exact(text, s, t, at) == []


@pytest.mark.parametrize("text", [
    "saved_changeHello Ω the ΩΩ☃é the ",
    "x = saved_change ﬁ set_saved_change; saved_change = 1 ½ saved_change",
])
def test_case3_repeated_substrings_never_pair_across_positions(qwen2, nfkc, text):
    a = Aligner(qwen2, nfkc)
    s, t, at, ab = _both(a, text)
    assert false_exact(text, s, t, at) == []
    check_partition(at)
    assert at.exact.sum() >= 3


def test_case3_ids_only_shift_after_a_repair_is_not_exact(qwen2):
    """Ids only: after a resync that skips far more on one side than on the other (a repeated
    string further on), positions are unproven, so nothing after it is exact. Built from real
    qwen2 ids: the teacher side lost 38 bytes after a divergence."""
    a = Aligner(qwen2, qwen2)
    text = "x = saved_change + 1; y = set_saved_change(z); w = saved_change * 2 and more text"
    ids = np.array(qwen2.backend_tokenizer.encode(text, add_special_tokens=False).ids)
    other = qwen2.backend_tokenizer.encode("x = ΩΩ" + text[text.index("_change(z)"):],
                                           add_special_tokens=False).ids
    ab = a.align(ids, np.array(other))
    check_partition(ab)
    (first_bad,) = np.flatnonzero(~ab.exact)[:1]
    assert not ab.exact[first_bad:].any()  # "(z); w = ..." sits at other positions: not exact


def test_case3_byte_mode_false_exact_is_what_text_mode_fixes(qwen2, nfkc):
    """The oracle does fail: bytes alone pair equal bytes at different places."""
    a = Aligner(qwen2, nfkc)
    s, t, at, ab = _both(a, "saved_changeHello Ω the ΩΩ☃é the ")
    assert false_exact("saved_changeHello Ω the ΩΩ☃é the ", s, t, ab) != []
    assert a.modes == {"student": "byte_level", "teacher": "byte_level-lossy"}


@pytest.mark.parametrize("teacher", ["pkg:mistral-v3", "unigram"])
def test_case4_a_real_leading_space_is_text(qwen2, teacher):
    tok = held_out(teacher) if not teacher.startswith("pkg:") else teacher
    a = Aligner(qwen2, tok)
    for text in (" hello world", "  two spaces", "hello world"):
        s, t, at, _ = _both(a, text)
        check_partition(at)
        assert false_exact(text, s, t, at) == []
        assert at.exact[0], (text, at.student_spans[:2], at.teacher_spans[:2])
        # the first chunk holds the real space on the student side (qwen2 is lossless)
        assert s.offsets[at.student_spans[0, 0], 0] == 0


def test_case4_literal_special_strings_are_not_exact(qwen2, mistral):
    a = Aligner(qwen2, mistral)
    text = "<s> hello world</s> and [INST] done"
    s, t, at, _ = _both(a, text)
    check_partition(at)
    assert false_exact(text, s, t, at) == []
    literal = [k for k, (t0, t1) in enumerate(at.teacher_spans.tolist())
               if mistral.bos_token_id in t.ids[t0:t1].tolist()]
    assert literal and not at.exact[literal].any()  # BOS parsed from text: not the same text
    assert at.exact.sum() >= len(at) - 3


def test_case7_unk_next_to_text_spoils_only_its_chunk(qwen2):
    uni = held_out("unigram")
    a = Aligner(qwen2, uni)
    text = "☃snow and ☃ more ☃x"
    s, t, at, ab = _both(a, text)
    check_partition(at)
    assert false_exact(text, s, t, at) == []
    unk_chunks = [k for k, (t0, t1) in enumerate(at.teacher_spans.tolist())
                  if uni.unk_token_id in t.ids[t0:t1].tolist()]
    assert len(unk_chunks) == 3 and not at.exact[unk_chunks].any()
    others = np.setdiff1d(np.arange(len(at)), unk_chunks)
    assert at.exact[others].all()  # the chunk after each <unk> stays exact
    assert at.exact.sum() > ab.exact.sum()


def test_case7_unk_that_is_the_eos_pairs_as_eos(qwen2):
    ue = held_out("unigram-unk-eos")
    assert ue.unk_token_id == ue.eos_token_id
    a = Aligner(qwen2, ue)
    docs = ["first doc ☃", "second doc"]
    text, s = encode_docs(qwen2, docs)
    _, t = encode_docs(ue, docs)
    at = a.align_text(text, s.ids, t.ids, s.offsets, t.offsets)
    check_partition(at)
    assert false_exact(text, s, t, at) == []
    eos_chunks = [k for k, (s0, s1) in enumerate(at.student_spans.tolist())
                  if s.ids[s0] == qwen2.eos_token_id]
    assert len(eos_chunks) == 2 and at.exact[eos_chunks].all()  # EOS ~ the unk-EOS, 1:1
    assert len(at.unaligned("student")) == 0 and len(at.unaligned("teacher")) == 0


def test_case7_divergences_closer_than_the_resync_window(qwen2, nfkc):
    a = Aligner(qwen2, nfkc)
    text = "ﬁ x ﬁ y ½ z ﬁ"
    s, t, at, ab = _both(a, text)
    assert false_exact(text, s, t, at) == []
    exact_text = {text[s.offsets[s0, 0]:s.offsets[s1 - 1, 1]]
                  for (s0, s1), ex in zip(at.student_spans.tolist(), at.exact) if ex}
    assert {" x", " y", " z"} <= exact_text  # the words between the divergences survive
    assert at.exact.sum() > ab.exact.sum()


def test_pipeline_teacher_stage_aligns_in_text_space(local_shards):
    """A WordPiece-uncased teacher in the pipeline is aligned by text positions (bytes alone
    gave ~17 % of the bound, so the exact share shows which path ran)."""
    from xtok_stream.config import load_config
    from xtok_stream.loader import Loader
    shards, _ = local_shards
    wp = held_out_path("wordpiece-uncased")
    cfg = load_config({"source": {"urls": shards[:2]}, "student": {"tokenizer": "pkg:qwen2",
                       "seq_len": 256}, "batch_size": 4, "num_lanes": 1,
                       "teachers": [{"tokenizer": wp, "name": "wp"}]})
    from xtok_stream.stages.teacher import _aligner

    assert _aligner("pkg:qwen2", wp, 4).modes == {"student": "byte_level",
                                                  "teacher": "wordpiece-lossy"}
    batch = next(iter(Loader(cfg)))
    assert batch["teachers"]["wp"]["metrics"]["exact_share"] > 0.9


_PKG = ["pkg:qwen2", "pkg:mistral-v3", "pkg:deepseek-v4"]


@pytest.mark.parametrize("student,teacher", [(s, t) for s in _PKG for t in _PKG if s != t])
@pytest.mark.parametrize("text", [
    "Hello there <unk> my friend [INST] this [/INST] goes on for a good while longer <|endoftext|>",
    "<s>Hello there my friend <｜end▁of▁sentence｜>this goes on for a good while longer.</s>",
    "Some text before <|endoftext|> and a lot of words after it, going on and on here.",
])
def test_literal_special_strings_are_no_truncated_tail(student, teacher, text):
    """A special token's string written in a document (one side parses it, zero bytes; the other
    spells it as text) at the end of the text once made the ids-only walk call the other side's
    literal a TRUNCATED_TAIL. Both paths: every token in a chunk, no false exact chunk."""
    from xtok_stream.tokenizers import load_tokenizer

    a = Aligner(load_tokenizer(student), load_tokenizer(teacher))
    s, t, at, ab = _both(a, text)
    for al in (ab, at):
        check_partition(al)
        reasons = [r for _, r in al.unaligned("student") + al.unaligned("teacher")]
        assert UnalignedReason.TRUNCATED_TAIL not in reasons, (al is ab, reasons)
        assert false_exact(text, s, t, al) == []
    assert at.exact.mean() > 0.7  # ids only may leave unproven positions non-exact
