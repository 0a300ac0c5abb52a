"""Properties of Aligner.align on real tokenizers (byte-level BPE qwen2/deepseek-v4 and
SentencePiece mistral-v3): partition, byte-exactness, minimality, identity, symmetry,
determinism, split UTF-8 characters, truncation, specials, divergence repair, batch form."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from align_checks import (
    ALPHABET,
    FRAGMENTS,
    check_exact_bytes,
    check_partition,
    chunk_end_offsets,
    effective_lengths,
    shared_boundaries,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtok_stream.align import Aligner, UnalignedReason, to_reference_format
from xtok_stream.errors import ConfigError

PAIRS = [("qwen2", "deepseek"), ("qwen2", "mistral"), ("mistral", "deepseek"), ("deepseek", "qwen2")]
texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=ALPHABET, max_size=10)),
    min_size=1, max_size=10,
).map("".join)
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def enc(tok, text):
    return np.asarray(tok.encode(text, add_special_tokens=False), dtype=np.int64)


def same_bytes(s_lens_text, t_lens_text):
    return s_lens_text == t_lens_text


@pytest.mark.parametrize("pair", PAIRS, ids="->".join)
@SETTINGS
@given(text=texts)
def test_partition_exact_minimal(pair, text, toks, aligner_cache):
    al_ = aligner_cache(*pair)
    s_ids, t_ids = enc(toks[pair[0]], text), enc(toks[pair[1]], text)
    st_, tt_ = al_.student_table, al_.teacher_table
    a = al_.align(s_ids, t_ids)
    check_partition(a)
    check_exact_bytes(a, s_ids, t_ids, st_, tt_)
    s_lens, t_lens = effective_lengths(st_, s_ids, text), effective_lengths(tt_, t_ids, text)
    s_all = b"".join(st_.token_bytes(int(i)) for i in s_ids)
    sb = s_all[int(s_lens.sum() < len(s_all)):]
    t_all = b"".join(tt_.token_bytes(int(i)) for i in t_ids)
    tb = t_all[int(t_lens.sum() < len(t_all)):]
    if sb == tb:  # property 3: same bytes -> all exact, closing at every shared boundary
        assert a.exact.all()
        assert len(a.student_unaligned) == len(a.teacher_unaligned) == 0
        assert chunk_end_offsets(a, s_lens) == sorted(shared_boundaries(s_lens, t_lens))
    else:  # only NFC (qwen2) may change the bytes here; the repair keeps the rest exact
        assert unicodedata.normalize("NFC", text) != text
        assert a.metrics.repairs >= 1 and not a.exact.all()
    if tb == unicodedata.normalize("NFC", text).encode():
        assert sb.decode() in (text, unicodedata.normalize("NFC", text))


@pytest.mark.parametrize("name", ["qwen2", "deepseek", "mistral"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_identity_all_one_to_one(name, text, toks, aligner_cache):
    tok = toks[name]
    ids = np.asarray(tok.encode(text, add_special_tokens=True) + [tok.eos_token_id])
    a = aligner_cache(name, name).align(ids, ids)
    check_partition(a)
    assert len(a) == len(ids) and a.exact.all()
    np.testing.assert_array_equal(a.student_spans[:, 0], np.arange(len(ids)))
    np.testing.assert_array_equal(a.student_spans, a.teacher_spans)
    assert a.metrics.one_to_one_chunks == len(ids) and a.metrics.exact_chunks == len(ids)


@pytest.mark.parametrize("pair", [("qwen2", "mistral"), ("deepseek", "qwen2")], ids="->".join)
@SETTINGS
@given(text=texts, cut=st.floats(0.0, 1.0))
def test_symmetric_and_deterministic(pair, text, cut, toks, aligner_cache):
    s_ids, t_ids = enc(toks[pair[0]], text), enc(toks[pair[1]], text)
    t_ids = t_ids[: max(1, int(len(t_ids) * cut))]  # truncation too
    ab = aligner_cache(*pair).align(s_ids, t_ids)
    ab2 = aligner_cache(*pair).align(s_ids, t_ids)
    ba = aligner_cache(pair[1], pair[0]).align(t_ids, s_ids).swapped()
    for x in (ab2, ba):
        np.testing.assert_array_equal(ab.student_spans, x.student_spans)
        np.testing.assert_array_equal(ab.teacher_spans, x.teacher_spans)
        np.testing.assert_array_equal(ab.exact, x.exact)
        np.testing.assert_array_equal(ab.student_unaligned, x.student_unaligned)
        np.testing.assert_array_equal(ab.teacher_unaligned_reason, x.teacher_unaligned_reason)
    check_partition(ab)


@pytest.mark.parametrize("pair", PAIRS, ids="->".join)
@SETTINGS
@given(text=texts, cut=st.floats(0.05, 0.95))
def test_truncated_side_tail_unaligned(pair, text, cut, toks, aligner_cache):
    al_ = aligner_cache(*pair)
    s_ids = enc(toks[pair[0]], text)
    t_full = enc(toks[pair[1]], text)
    t_ids = t_full[: int(len(t_full) * cut)]
    a = al_.align(s_ids, t_ids)
    check_partition(a)
    check_exact_bytes(a, s_ids, t_ids, al_.student_table, al_.teacher_table)
    if unicodedata.normalize("NFC", text) != text:
        return  # qwen2's NFC may make the "short" side longer in bytes; checked above only
    assert len(a.teacher_unaligned) == 0  # the teacher is the short side
    assert set(a.student_unaligned_reason.tolist()) <= {UnalignedReason.TRUNCATED_TAIL}
    if len(a.student_unaligned):  # the tail is a suffix, after every chunk
        tail = a.student_unaligned
        np.testing.assert_array_equal(tail, np.arange(tail[0], len(s_ids)))
        assert len(a) == 0 or a.student_spans[-1, 1] == tail[0]
    if len(t_ids):
        # every student token wholly inside the teacher's bytes is in a chunk
        s_lens = effective_lengths(al_.student_table, s_ids, text)
        t_total = effective_lengths(al_.teacher_table, t_ids, text).sum()
        inside = np.flatnonzero(np.cumsum(s_lens) <= t_total)
        assert not np.isin(inside, a.student_unaligned).any()


def test_split_multibyte_character(toks, aligner_cache):
    q, m = toks["qwen2"], toks["mistral"]
    text = "ab 👨‍👩‍👧"
    q_ids, m_ids = enc(q, text), enc(m, text)
    qb = aligner_cache("qwen2", "mistral").student_table
    # qwen2 splits the first emoji after 3 of its 4 bytes ('ĠðŁĳ' | '¨')
    q_cut = q_ids[: q.convert_ids_to_tokens(q_ids.tolist()).index("ĠðŁĳ") + 1]
    assert qb.ids_bytes(q_cut).endswith(b"\xf0\x9f\x91")
    m_toks = m.convert_ids_to_tokens(m_ids.tolist())
    k = m_toks.index("<0xF0>")
    al_ = aligner_cache("qwen2", "mistral")
    # both end on the same byte inside the character: exact, nothing left over
    a = al_.align(q_cut, m_ids[: k + 3])
    check_partition(a)
    check_exact_bytes(a, q_cut, m_ids[: k + 3], al_.student_table, al_.teacher_table)
    assert a.exact.all() and len(a.student_unaligned) == len(a.teacher_unaligned) == 0
    assert tuple(a.teacher_spans[-1]) == (k - 1, k + 3)  # '▁' + 3 byte pieces
    # both end inside it, at different bytes: a non-exact straddling chunk, the rest exact
    for m_end in (k + 1, k + 2):
        a = al_.align(q_cut, m_ids[:m_end])
        check_partition(a)
        check_exact_bytes(a, q_cut, m_ids[:m_end], al_.student_table, al_.teacher_table)
        assert a.exact[:-1].all() and not a.exact[-1]
        assert tuple(a.teacher_spans[-1]) == (k - 1, m_end) and len(a.student_unaligned) == 0
    # the teacher goes one byte further: the student's bytes all align, the byte is a tail
    a = al_.align(q_cut, m_ids[: k + 4])
    assert a.exact.all() and a.unaligned("teacher") == [(k + 3, UnalignedReason.TRUNCATED_TAIL)]


def test_specials_pair_by_role_and_one_sided_bos(toks, aligner_cache):
    q, d, m = toks["qwen2"], toks["deepseek"], toks["mistral"]
    docs = ["Hello world", "second doc\n", "日本語"]
    m_ids = [m.bos_token_id]
    d_ids = [d.bos_token_id]
    q_ids = []
    for doc in docs:
        m_ids += m.encode(doc, add_special_tokens=False) + [m.eos_token_id]
        d_ids += d.encode(doc, add_special_tokens=False) + [d.eos_token_id]
        q_ids += q.encode(doc, add_special_tokens=False) + [q.eos_token_id]
    a = aligner_cache("mistral", "deepseek").align(m_ids, d_ids)
    check_partition(a)
    assert a.exact.all() and a.metrics.dummy_prefix_skips == 3  # each doc's first word
    ref = to_reference_format(a, m_ids, d_ids, m, d)
    assert (["<s>"], ["<｜begin▁of▁sentence｜>"], 0, 1, 0, 1, True) == ref[0]
    eos_chunks = [r for r in ref if r[0] == ["</s>"]]
    assert len(eos_chunks) == 3 and all(r[1] == ["<｜end▁of▁sentence｜>"] and r[6] for r in eos_chunks)
    # qwen2 has no BOS: mistral's <s> is unaligned and shifts nothing
    a2 = aligner_cache("mistral", "qwen2").align(m_ids, q_ids)
    check_partition(a2)
    assert a2.unaligned("student") == [(0, UnalignedReason.SPECIAL_UNPAIRED)]
    a3 = aligner_cache("mistral", "qwen2").align(m_ids[1:], q_ids)
    np.testing.assert_array_equal(a2.student_spans - [1, 1], a3.student_spans)
    np.testing.assert_array_equal(a2.teacher_spans, a3.teacher_spans)
    # a missing EOS in the middle: listed, the documents around it still align exactly
    q_missing = list(q_ids)
    del q_missing[q_missing.index(q.eos_token_id)]
    a4 = aligner_cache("mistral", "qwen2").align(m_ids, q_missing)
    check_partition(a4)
    assert a4.exact.all()
    eos_pos = m_ids.index(m.eos_token_id)
    assert (eos_pos, UnalignedReason.SPECIAL_UNPAIRED) in a4.unaligned("student")


def test_unk_lowercase_and_nfc_repair(toks, aligner_cache):
    q, d, m = toks["qwen2"], toks["deepseek"], toks["mistral"]
    tail = " and the rest of this sentence stays aligned exactly."
    # NFC: qwen2 composes e+U+0301, deepseek keeps it decomposed
    text = "Un cafe\u0301 noir" + tail
    a = aligner_cache("qwen2", "deepseek").align(enc(q, text), enc(d, text))
    check_partition(a)
    assert a.metrics.repairs == 1 and np.flatnonzero(~a.exact).tolist() == [1]  # "cafe\u0301" only
    # lower-casing on one side, same length
    s_ids, t_ids = enc(d, "Some Words Differ" + tail), enc(d, "Some words Differ" + tail)
    a = aligner_cache("deepseek", "deepseek").align(s_ids, t_ids)
    check_partition(a)
    assert a.metrics.repairs == 1 and np.flatnonzero(~a.exact).tolist() == [1]  # " Words"
    # <unk> standing for a word: its chunk is not exact, the rest is
    m_ids = enc(m, "alpha beta gamma" + tail)
    toks_m = m.convert_ids_to_tokens(m_ids.tolist())
    k = toks_m.index("▁beta")
    m_unk = m_ids.copy()
    m_unk[k] = m.unk_token_id
    a = aligner_cache("qwen2", "mistral").align(enc(q, "alpha beta gamma" + tail), m_unk)
    check_partition(a)
    check_exact_bytes(a, enc(q, "alpha beta gamma" + tail), m_unk,
                      aligner_cache("qwen2", "mistral").student_table,
                      aligner_cache("qwen2", "mistral").teacher_table)
    bad = np.flatnonzero(~a.exact)
    assert len(bad) == 1 and a.teacher_spans[bad[0], 0] <= k < a.teacher_spans[bad[0], 1]
    # unrelated texts: no resync within the window -> one non-exact chunk, nothing dropped
    a = aligner_cache("qwen2", "deepseek").align(enc(q, "x" * 10 + "abc" * 50), enc(d, "y" * 10 + "ABC" * 50))
    check_partition(a)


def test_metrics_and_max_comb_len(toks, aligner_cache):
    q, m = toks["qwen2"], toks["mistral"]
    text = "emoji 🙂 and 👨‍👩‍👧 next to ascii"
    s_ids, t_ids = enc(q, text), enc(m, text)
    t_ids = t_ids[: m.convert_ids_to_tokens(t_ids.tolist()).index("▁next")]
    al_ = aligner_cache("qwen2", "mistral", max_comb_len=2)
    a = al_.align(s_ids, t_ids)
    ns = a.student_spans[:, 1] - a.student_spans[:, 0]
    nt = a.teacher_spans[:, 1] - a.teacher_spans[:, 0]
    mt = a.metrics
    assert mt.chunks_over_max_comb == int(((ns > 2) | (nt > 2)).sum()) > 0
    assert mt.n_chunks == len(a) and mt.exact_chunks == int(a.exact.sum())
    assert mt.one_to_one_chunks == int(((ns == 1) & (nt == 1)).sum())
    assert mt.student_tokens_per_chunk == pytest.approx(ns.mean())
    assert mt.teacher_tokens_per_chunk == pytest.approx(nt.mean())
    st_ = al_.student_table
    assert mt.student_unaligned_bytes == len(st_.ids_bytes(s_ids[a.student_unaligned]))
    assert mt.student_unaligned_bytes == len(" next to ascii")
    assert mt.unaligned_bytes == mt.student_unaligned_bytes + mt.teacher_unaligned_bytes


def test_align_batch_masks(toks, aligner_cache):
    q, m = toks["qwen2"], toks["mistral"]
    al_ = aligner_cache("qwen2", "mistral")
    rows = ["first row of text", "second, longer row of text 日本語 🙂"]
    s_list, t_list = [enc(q, r) for r in rows], [enc(m, r) for r in rows]
    T, U = 16, 24
    S = np.full((2, T), q.eos_token_id)
    Tt = np.zeros((2, U), np.int64)
    sm, tm = np.zeros((2, T), bool), np.zeros((2, U), bool)
    S[0, : len(s_list[0])], sm[0, : len(s_list[0])] = s_list[0], True  # right padding
    S[1, T - len(s_list[1]) :], sm[1, T - len(s_list[1]) :] = s_list[1], True  # left padding
    Tt[0, : len(t_list[0])], tm[0, : len(t_list[0])] = t_list[0], True
    Tt[1, : len(t_list[1])], tm[1, : len(t_list[1])] = t_list[1], True
    out = al_.align_batch(S, Tt, sm, tm)
    for b, a in enumerate(out):
        check_partition(a)
        single = al_.align(s_list[b], t_list[b])
        s_lo = int(np.flatnonzero(sm[b])[0])
        np.testing.assert_array_equal(a.student_spans, single.student_spans + s_lo)
        np.testing.assert_array_equal(a.teacher_spans, single.teacher_spans)
        pads = {i for i, r in a.unaligned("student") if r == UnalignedReason.PAD}
        assert pads == set(np.flatnonzero(~sm[b]).tolist())
        assert a.n_student == T and a.n_teacher == U
    holes = sm.copy()
    holes[0, 1] = False
    with pytest.raises(ConfigError, match="holes"):
        al_.align_batch(S, Tt, holes, tm)
    with pytest.raises(ConfigError):
        al_.align(S, Tt)  # 2-D needs align_batch
    with pytest.raises(ConfigError, match="outside"):
        al_.align([10**7], [1])


def test_reference_format_and_names(toks):
    a_ = Aligner("pkg:qwen2", "pkg:mistral-v3", max_comb_len=4)
    q, m = toks["qwen2"], toks["mistral"]
    s_ids, t_ids = enc(q, "def __init__(self):\r\n\tpass"), enc(m, "def __init__(self):\r\n\tpass")
    ref = a_.align_reference(s_ids, t_ids)
    a = a_.align(s_ids, t_ids)
    assert len(ref) == len(a)
    for (s_tok, t_tok, s0, s1, t0, t1, ok), sp, tp, ex in zip(ref, a.student_spans, a.teacher_spans, a.exact):
        assert (s0, s1, t0, t1, ok) == (*sp.tolist(), *tp.tolist(), bool(ex))
        assert s_tok == q.convert_ids_to_tokens(s_ids[s0:s1].tolist())
        assert t_tok == m.convert_ids_to_tokens(t_ids[t0:t1].tolist())
    assert [r[0] for r in ref][:2] == [["def"], ["Ġ__"]]
    with pytest.raises(ConfigError):
        Aligner("pkg:qwen2", "pkg:mistral-v3", max_comb_len=0)


def _pack(tok, docs, n):
    ids = []
    for doc in docs:
        ids += tok.encode(doc, add_special_tokens=False) + [tok.eos_token_id]
        if len(ids) >= n:
            break
    return np.asarray(ids[:n], np.int64)


@pytest.mark.corpus
def test_corpus_packed_sequences(corpus_texts, toks, aligner_cache):
    """Packed 4096-token qwen2 rows, decoded per EOS-separated part, re-tokenized by the
    teachers: properties hold and exact chunks reach >= 99% of the shared-boundary bound."""
    q = toks["qwen2"]
    docs = [r["text"] for r in corpus_texts]
    rng = np.random.default_rng(0)
    for teacher in ("mistral", "deepseek"):
        al_ = aligner_cache("qwen2", teacher)
        tt, st_ = al_.teacher_table, al_.student_table
        t_tok = toks[teacher]
        exact = bound = n_tok = 0
        for _ in range(3):
            start = int(rng.integers(0, max(1, len(docs) - 200)))
            s_ids = _pack(q, docs[start:], 4096)
            cuts = np.flatnonzero(s_ids == q.eos_token_id)
            parts = np.split(s_ids, cuts + 1)
            t_ids = []
            for p in parts:
                has_eos = len(p) and p[-1] == q.eos_token_id
                body = p[:-1] if has_eos else p
                text = q.decode(body.tolist())
                t_part = t_tok.encode(text, add_special_tokens=False) if text else []
                s_lens, t_lens = st_.lengths[body], effective_lengths(tt, t_part, text)
                t_all = tt.ids_bytes(t_part)
                sb, tb = st_.ids_bytes(body), t_all[int(t_lens.sum() < len(t_all)):]
                m = min(len(sb), len(tb))
                common = next((k for k in range(m) if sb[k] != tb[k]), m)
                bound += len({x for x in shared_boundaries(s_lens, t_lens) if x <= common}) + bool(has_eos)
                t_ids += t_part + ([t_tok.eos_token_id] if has_eos else [])
            a = al_.align(s_ids, t_ids)
            check_partition(a)
            check_exact_bytes(a, s_ids, np.asarray(t_ids), st_, tt)
            exact += int(a.exact.sum())
            n_tok += len(s_ids)
        assert exact >= 0.99 * bound, (teacher, exact, bound)
        assert exact / n_tok > 0.8


def test_dummy_prefix_after_a_one_sided_eos(toks, aligner_cache):
    """Documents tokenized one by one: mistral-v3 puts a dummy space before each; the student
    separates them with EOS, the teacher does not. Every text chunk still aligns exactly."""
    q, m = toks["qwen2"], toks["mistral"]
    docs = ["First document.", "Second one", "third"]
    s_ids, t_ids = [], []
    for doc in docs:
        s_ids += q.encode(doc, add_special_tokens=False) + [q.eos_token_id]
        t_ids += m.encode(doc, add_special_tokens=False)
    a = aligner_cache("qwen2", "mistral").align(s_ids, t_ids)
    check_partition(a)
    check_exact_bytes(a, s_ids, t_ids, aligner_cache("qwen2", "mistral").student_table,
                      aligner_cache("qwen2", "mistral").teacher_table)
    assert a.exact.all() and a.metrics.dummy_prefix_skips == 3
    assert [r for _, r in a.unaligned("student")] == [UnalignedReason.SPECIAL_UNPAIRED] * 3
    # a real leading space is text, not a dummy prefix
    a = aligner_cache("qwen2", "mistral").align(q.encode(" x y", add_special_tokens=False),
                                                m.encode(" x y", add_special_tokens=False))
    assert a.exact.all() and a.metrics.dummy_prefix_skips == 0
