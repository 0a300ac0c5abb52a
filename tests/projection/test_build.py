"""build_projection on real vocabularies, the split rule on a toy vocabulary, and the CLI module
(called through its own argparse parser: main.py registers it separately)."""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import pytest

from xtok_stream.align import Role, byte_table
from xtok_stream.errors import ConfigError
from xtok_stream.projection import build_projection, load_projection
from xtok_stream.projection.build import _first_tokens


def splits(b: bytes, vocab: set[bytes], n: int):
    """Every split of ``b`` into at most ``n`` tokens of ``vocab`` (brute force)."""
    if not b:
        yield ()
        return
    if n == 0:
        return
    for ln in range(1, len(b) + 1):
        if b[:ln] in vocab:
            for rest in splits(b[ln:], vocab, n - 1):
                yield (b[:ln],) + rest


def test_split_rule_on_toy_vocabulary():
    vocab = [b" Hell", b" He", b" H", b"llo", b"ello", b"o", b"l", b"x"]
    ids = {b: i for i, b in enumerate(vocab)}
    cand, rule = _first_tokens(b" Hello", ids, 5, 4)
    assert rule == "decomposed"
    assert sorted((vocab[t], w) for t, w, _ in cand) == [(b" H", 1), (b" He", 1), (b" Hell", 1)]
    # cap 1 < the shortest split (2): greedy longest prefix
    assert _first_tokens(b" Hello", ids, 5, 1) == ([(0, 1, 5)], "greedy")
    assert _first_tokens(b"zzz", ids, 5, 4) == ([], "empty")
    # brute force agrees on every string over a small alphabet
    for n in range(1, 6):
        for tup in itertools.product([b"l", b"o", b"x"], repeat=n):
            b = b"".join(tup)
            cand, rule = _first_tokens(b, ids, 5, 3)
            all_splits = list(splits(b, set(vocab), 3))
            if not all_splits:
                assert rule in ("greedy", "empty")
                continue
            m = min(map(len, all_splits))
            want: dict[bytes, int] = {}
            for s in all_splits:
                if len(s) == m:
                    want[s[0]] = want.get(s[0], 0) + 1
            assert {vocab[t]: w for t, w, _ in cand} == want


@pytest.fixture(scope="module", params=[("qwen2", "mistral"), ("mistral", "qwen2"),
                                        ("qwen2", "deepseek")])
def built(request):
    s, t = (request.getfixturevalue(n) for n in request.param)
    return s, t, build_projection(s, t, top_k=4, max_comb_len=3, progress=False)


def test_build_properties(built):
    s_tok, t_tok, p = built
    st, tt = byte_table(s_tok), byte_table(t_tok)
    assert p.shape == (len(s_tok), len(t_tok))
    sums = p.row_sums()
    filled = sums > 0
    np.testing.assert_allclose(sums[filled], 1.0, rtol=1e-5)
    assert np.bincount(p.rows).max() <= 4
    assert sum(v for k, v in p.meta.items() if k.startswith("rows_") and k != "rows_empty") \
        == filled.sum()
    t_bytes = [tt.token_bytes(i) for i in range(tt.vocab_size)]
    t_set = {b for b in t_bytes if b}
    rows = {}
    for r, c, w in zip(p.rows.tolist(), p.cols.tolist(), p.weights.tolist()):
        rows.setdefault(r, []).append((c, w))
    for sid in range(st.vocab_size):
        b = st.token_bytes(sid)
        if not b:
            continue
        got = rows.get(sid, [])
        if b in t_set:  # exact byte match: weight 1 to a teacher token with those bytes
            assert len(got) == 1 and got[0][1] == 1.0 and t_bytes[got[0][0]] == b, sid
        else:  # every target is a proper prefix of the student bytes
            assert all(b.startswith(t_bytes[c]) and len(t_bytes[c]) < len(b) for c, _ in got)
    # specials pair by role: the student's EOS goes to the teacher's EOS
    s_eos = int(np.flatnonzero(st.role == Role.EOS)[0])
    t_eos = int(np.flatnonzero(tt.role == Role.EOS)[0])
    assert rows[s_eos] == [(t_eos, 1.0)]


def test_build_splits_match_brute_force(qwen2, mistral):
    """On sampled decomposed rows, the targets are the first tokens of the shortest splits."""
    p = build_projection(qwen2, mistral, top_k=50, max_comb_len=3, progress=False)
    st, tt = byte_table(qwen2), byte_table(mistral)
    t_set = {tt.token_bytes(i) for i in range(tt.vocab_size)} - {b""}
    rng = np.random.default_rng(0)
    checked = 0
    for sid in rng.permutation(st.vocab_size)[:3000].tolist():
        b = st.token_bytes(sid)
        if not b or b in t_set or len(b) > 12:
            continue
        all_splits = list(splits(b, t_set, 3))
        if not all_splits:
            continue
        m = min(map(len, all_splits))
        want = {s[0] for s in all_splits if len(s) == m}
        got = {tt.token_bytes(c) for c in p.cols[p.rows == sid].tolist()}
        assert got == want, (b, got, want)
        checked += 1
    assert checked > 100


def test_build_options(mistral, qwen2):
    p = build_projection(mistral, qwen2, top_k=1, max_comb_len=2, n_student=32800,
                         n_teacher=152064, progress=False)
    assert p.shape == (32800, 152064) and p.row_sums()[32768:].sum() == 0
    assert np.bincount(p.rows).max() == 1
    with pytest.raises(ConfigError, match="below the tokenizers"):
        build_projection(mistral, qwen2, n_student=100, progress=False)
    with pytest.raises(ConfigError, match="--top-k"):
        build_projection(mistral, qwen2, top_k=0, progress=False)


def run_cli(argv: list[str]) -> int:
    from xtok_stream.cli import projection

    parser = argparse.ArgumentParser(prog="xtok projection")
    projection.add_arguments(parser)
    return projection.main(parser.parse_args(argv))


def test_cli_build_and_info(tmp_path, mistral, qwen2, capsys):
    out = tmp_path / "m2q.safetensors"
    argv = ["build", "--student", "pkg:mistral-v3", "--teacher", "pkg:qwen2", "--out", str(out),
            "--top-k", "3", "--max-comb-len", "2", "--no-progress"]
    assert run_cli(argv) == 0
    assert "wrote" in capsys.readouterr().out
    p = load_projection(out, n_student=len(mistral), n_teacher=len(qwen2))
    assert p.meta["student"] == "pkg:mistral-v3" and p.meta["max_comb_len"] == "2"
    assert p.shape == (32768, len(qwen2))
    dense = tmp_path / "m2q_top3.pt"
    assert run_cli([*argv, "--out", str(dense), "--format", "dense"]) == 0  # last --out wins
    q = load_projection(dense, use_sparse_format=False, n_student=32768, n_teacher=len(qwen2))
    np.testing.assert_array_equal(q.student_ids, p.student_ids)
    np.testing.assert_array_equal(q.teacher_ids, p.teacher_ids)
    np.testing.assert_allclose(q.weights, p.weights)
    capsys.readouterr()
    assert run_cli(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "safetensors" and info["shape"] == [32768, len(qwen2)]
    assert abs(info["row_sum_max"] - 1) < 1e-5 and info["max_per_row"] <= 3
    # a reference file knows only its largest id; --student/--teacher size it by len(tokenizer)
    assert run_cli(["info", str(dense)]) == 0
    assert json.loads(capsys.readouterr().out)["shape"][1] == int(q.teacher_ids.max()) + 1
    assert run_cli(["info", str(dense), "--student", "pkg:mistral-v3", "--teacher", "pkg:qwen2"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [32768, len(qwen2)]
