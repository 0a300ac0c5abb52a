"""``segments``: for any monotone chunking with tokens left out on either side, the segments
cover both sides in order, each chunk once, unaligned runs only between chunks."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xtok_stream.inspect import TeacherView, segments
from xtok_stream.inspect.view import Tokens


@st.composite
def chunkings(draw):
    k = draw(st.integers(0, 12))
    s_map, t_map = [], []
    for c in range(-1, k):  # c = -1: leading unaligned run; later: chunk c then a gap
        if c >= 0:
            s_map += [c] * draw(st.integers(1, 3))
            t_map += [c] * draw(st.integers(1, 3))
        s_map += [-1] * draw(st.integers(0, 2))
        t_map += [-1] * draw(st.integers(0, 2))
    exact = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    return np.array(s_map, np.int32), np.array(t_map, np.int32), np.array(exact, bool)


@settings(max_examples=100, deadline=None)
@given(chunkings())
def test_segments_partition_both_sides(c):
    s_map, t_map, exact = c
    tokens = Tokens(np.zeros(len(t_map), np.int64), [""] * len(t_map), np.zeros(len(t_map), bool))
    view = TeacherView("t", tokens, s_map, t_map, exact, {}, {})
    segs = segments(view)
    assert [i for g in segs for i in range(*g.s)] == list(range(len(s_map)))
    assert [j for g in segs for j in range(*g.t)] == list(range(len(t_map)))
    assert [g.k for g in segs if g.k >= 0] == list(range(len(exact)))
    for g in segs:
        assert (s_map[g.s[0]:g.s[1]] == g.k).all() and (t_map[g.t[0]:g.t[1]] == g.k).all()
        assert g.k >= 0 or g.s[1] > g.s[0] or g.t[1] > g.t[0]  # no empty unaligned runs
    assert all(a.k >= 0 or b.k >= 0 for a, b in zip(segs, segs[1:]))  # gaps merged into one
