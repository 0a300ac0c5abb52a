"""joint_refinement / MultiAligner: one student chunking valid for several teachers."""

from __future__ import annotations

import numpy as np
import pytest
from align_checks import ALPHABET, FRAGMENTS, check_partition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtok_stream.align import Alignment, AlignmentMetrics, MultiAligner, joint_refinement
from xtok_stream.errors import ConfigError

_M = AlignmentMetrics(0, 0, 0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0)


def mk(s_spans, t_spans, exact, s_un, n_s, n_t) -> Alignment:
    i32 = lambda x: np.asarray(x, np.int32).reshape(-1, 2)
    return Alignment(
        i32(s_spans), i32(t_spans), np.asarray(exact, bool),
        np.asarray(s_un, np.int32), np.full(len(s_un), 2, np.int8),
        np.zeros(0, np.int32), np.zeros(0, np.int8),
        np.zeros(n_s, np.uint8), np.zeros(n_t, np.uint8), n_s, n_t, _M,
    )  # fmt: skip


def test_hand_built_example():
    # student offsets 1 and 5 are inside chunks of teacher 1; 2 and 4 inside chunks of teacher 2
    a1 = mk([[0, 2], [2, 3], [3, 4], [4, 6]], [[0, 1], [1, 3], [3, 4], [4, 5]], [1, 1, 0, 1], [], 6, 5)
    a2 = mk([[0, 1], [1, 3], [3, 5]], [[0, 2], [2, 3], [3, 6]], [1, 1, 1], [5], 6, 6)
    j = joint_refinement([a1, a2], 6)
    assert j.student_spans.tolist() == [[0, 3], [3, 6]]
    assert j.student_chunk_ids.tolist() == [0, 0, 0, 1, 1, 1]
    assert j.teacher_spans[0].tolist() == [[0, 3], [3, 5]]
    assert j.teacher_spans[1].tolist() == [[0, 3], [3, 6]]
    assert j.exact.tolist() == [[True, False], [True, False]]  # a1: inexact chunk; a2: token 5 unaligned
    assert j.aligned.all() and j.all_exact.tolist() == [True, False]
    # a student token no teacher aligned is its own joint chunk with no teacher span
    a3 = mk([[1, 3]], [[0, 4]], [1], [0, 3], 4, 4)
    j = joint_refinement([a3], 4)
    assert j.student_spans.tolist() == [[0, 1], [1, 3], [3, 4]]
    assert j.teacher_spans[0].tolist() == [[-1, -1], [0, 4], [-1, -1]]
    assert j.aligned.tolist() == [[False, True, False]] and j.exact.tolist() == [[False, True, False]]
    with pytest.raises(ConfigError):
        joint_refinement([a1, a3], 6)
    with pytest.raises(ConfigError):
        joint_refinement([], 6)


texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=ALPHABET, max_size=10)), min_size=1, max_size=10
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, cut=st.floats(0.3, 1.0))
def test_joint_refinement_real_teachers(text, cut, toks, aligner_cache):
    q = toks["qwen2"]
    s_ids = np.asarray(q.encode(text, add_special_tokens=False) + [q.eos_token_id])
    teachers = ("mistral", "deepseek")
    als = []
    for name in teachers:
        tok = toks[name]
        t_ids = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
        if name == "deepseek":
            t_ids = t_ids[: max(1, int(len(t_ids) * cut))]  # one teacher truncated
        als.append(aligner_cache("qwen2", name).align(s_ids, t_ids))
        check_partition(als[-1])
    n = len(s_ids)
    j = joint_refinement(als, n)
    spans = j.student_spans
    assert spans[0, 0] == 0 and spans[-1, 1] == n and (spans[1:, 0] == spans[:-1, 1]).all()
    assert (spans[:, 1] > spans[:, 0]).all()
    np.testing.assert_array_equal(j.student_chunk_ids,
                                  np.repeat(np.arange(len(j)), spans[:, 1] - spans[:, 0]))
    cuts = set(spans[:, 0].tolist()) | {n}
    for k, a in enumerate(als):
        # every teacher chunk lies inside one joint chunk ...
        for s0, s1 in a.student_spans.tolist():
            assert j.student_chunk_ids[s0] == j.student_chunk_ids[s1 - 1]
        # ... and the teacher span of a joint chunk is the hull of its chunks
        cid = j.student_chunk_ids[a.student_spans[:, 0]]
        for c in range(len(j)):
            mine = a.teacher_spans[cid == c]
            if len(mine):
                assert j.teacher_spans[k][c].tolist() == [mine[:, 0].min(), mine[:, 1].max()]
                s0, s1 = spans[c]
                covered = a.student_spans[cid == c]
                exact_tokens = ((covered[:, 1] - covered[:, 0]) * a.exact[cid == c]).sum()
                assert j.exact[k, c] == (exact_tokens == s1 - s0)
            else:
                assert not j.aligned[k, c] and j.teacher_spans[k][c].tolist() == [-1, -1]
    # finest: an offset no teacher chunk straddles is a joint cut
    straddled = set()
    for a in als:
        for s0, s1 in a.student_spans.tolist():
            straddled |= set(range(s0 + 1, s1))
    assert cuts == set(range(n + 1)) - straddled


def test_multi_aligner_matches_single(toks, aligner_cache):
    q, m, d = toks["qwen2"], toks["mistral"], toks["deepseek"]
    text = "Multi teacher 多教师 distillation 🙂 works.\r\n"
    s_ids = q.encode(text, add_special_tokens=False)
    t_ids = [m.encode(text, add_special_tokens=False), d.encode(text, add_special_tokens=False)]
    ma = MultiAligner(q, [m, d], max_comb_len=4).warmup()
    per, joint = ma.align(s_ids, t_ids)
    for a, name, t in zip(per, ("mistral", "deepseek"), t_ids):
        b = aligner_cache("qwen2", name).align(s_ids, t)
        np.testing.assert_array_equal(a.student_spans, b.student_spans)
        np.testing.assert_array_equal(a.teacher_spans, b.teacher_spans)
    assert joint.all_exact.all() and len(joint) <= min(len(a) for a in per)
    with pytest.raises(ConfigError):
        ma.align(s_ids, t_ids[:1])
    with pytest.raises(ConfigError):
        MultiAligner(q, [])
