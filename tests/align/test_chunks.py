import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xtok_stream.align.chunks import chunk_coo


def reference_loop(pairs, s_len, t_len, exact_only):
    """The reference's filter, written as the plain loop it is described as."""
    s_rows, t_rows, cid = [], [], 0
    for s0, s1, t0, t1 in pairs:
        if exact_only and (s1 - s0 != 1 or t1 - t0 != 1):
            continue
        if s0 == -1 or t0 == -1:
            continue
        if s1 > s_len or t1 > t_len:
            continue
        s_rows += [(p, cid) for p in range(s0, s1)]
        t_rows += [(p, cid) for p in range(t0, t1)]
        cid += 1
    return s_rows, t_rows, cid


def test_worked_example_from_the_docstring():
    s = np.array([[0, 1], [1, 2], [2, 4]])
    t = np.array([[0, 2], [2, 3], [3, 4]])
    sc, tc, n = chunk_coo(s, t, 10, 10, exact_token_match_only=True)
    assert sc.tolist() == [[1, 0]] and tc.tolist() == [[2, 0]] and n == 1
    sc, tc, n = chunk_coo(s, t, 3, 10)  # the last chunk ends past the student length
    assert n == 2 and sc.tolist() == [[0, 0], [1, 1]] and tc.tolist() == [[0, 0], [1, 0], [2, 1]]
    assert chunk_coo(s[:0], t[:0], 5, 5)[0].shape == (0, 2)


@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(1, 3), st.integers(-1, 3),
                          st.integers(1, 3)), max_size=12),
       st.integers(0, 30), st.integers(0, 30), st.booleans())
@settings(max_examples=200, deadline=None)
def test_equals_the_reference_loop(raw, s_len, t_len, exact_only):
    pairs, s_pos, t_pos = [], 0, 0
    for s_gap, s_n, t_gap, t_n in raw:  # contiguous spans, some with a -1 sentinel start
        s0 = -1 if s_gap == -1 else s_pos
        t0 = -1 if t_gap == -1 else t_pos
        pairs.append((s0, s_pos + s_n if s0 != -1 else -1 + s_n, t0, t_pos + t_n if t0 != -1 else -1 + t_n))
        s_pos += s_n
        t_pos += t_n
    s = np.array([[p[0], p[1]] for p in pairs], dtype=np.int64).reshape(-1, 2)
    t = np.array([[p[2], p[3]] for p in pairs], dtype=np.int64).reshape(-1, 2)
    sc, tc, n = chunk_coo(s, t, s_len, t_len, exact_only)
    rs, rt, rn = reference_loop(pairs, s_len, t_len, exact_only)
    assert n == rn and sc.tolist() == [list(r) for r in rs] and tc.tolist() == [list(r) for r in rt]
