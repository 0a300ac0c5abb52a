"""Projection files: our safetensors COO round-trip, the reference's dense top-k and sparse torch
files (weights_only: a pickled object is refused), multiplier, reverse map, shape errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xtok_stream.errors import ConfigError
from xtok_stream.projection import Projection, load_projection, save_projection, save_reference


class Custom:  # an arbitrary class: weights_only must refuse to rebuild it
    pass


class Hostile:  # a pickle that calls a function when loaded
    def __reduce__(self):
        return (print, ("this must never run",))


def dense_of(p: Projection) -> np.ndarray:
    out = np.zeros(p.shape, np.float64)
    np.add.at(out, (p.rows, p.cols), p.weights)
    return out


def random_projection(seed=0, n_s=50, n_t=40, nnz=120) -> Projection:
    rng = np.random.default_rng(seed)
    return Projection.from_coo(rng.integers(0, n_s, nnz), rng.integers(0, n_t, nnz),
                               rng.random(nnz).astype(np.float32) + 0.01, n_s, n_t)


def test_safetensors_round_trip(tmp_path):
    p = random_projection()
    path = tmp_path / "p.safetensors"
    save_projection(path, p, {"student": "pkg:qwen2", "top_k": 10})
    q = load_projection(path)
    assert (q.n_student, q.n_teacher, q.transposed) == (50, 40, False)
    np.testing.assert_array_equal(q.student_ids, p.student_ids)
    np.testing.assert_array_equal(q.teacher_ids, p.teacher_ids)
    np.testing.assert_array_equal(q.weights, p.weights)
    assert q.meta["student"] == "pkg:qwen2" and q.meta["top_k"] == "10"
    assert q.meta["format"] == "xtok-projection"
    # Larger (padded) vocabulary sizes are accepted; smaller ones name the file and the shape.
    assert load_projection(path, n_student=64, n_teacher=48).shape == (64, 48)
    with pytest.raises(ConfigError, match=r"p\.safetensors.*\[0, 10\) for a \[10, 40\]"):
        load_projection(path, n_student=10)


def test_coalesce_sums_duplicates():
    p = Projection.from_coo([1, 1, 0], [2, 2, 3], [0.25, 0.5, 1.0], 2, 4)
    assert p.nnz == 2
    np.testing.assert_allclose(dense_of(p), [[0, 0, 0, 1], [0, 0, 0.75, 0]])


def test_reference_dense_file(tmp_path):
    ind = torch.tensor([[3, 1, -1], [0, 2, 2], [4, 0, 0]], dtype=torch.int64)
    lik = torch.tensor([[0.6, 0.4, 0.3], [0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    path = tmp_path / "projection_map_top_3.pt"
    torch.save({"indices": ind, "likelihoods": lik, "model_A_id": "a", "enable_scale_trick": False},
               path)
    p = load_projection(path, use_sparse_format=False, n_student=3, n_teacher=5)
    want = np.zeros((3, 5))
    want[0, 3], want[0, 1] = 0.6, 0.4  # index -1: padding, dropped
    want[1, 0], want[1, 2] = 0.5, 0.5  # repeated index: summed, as torch's coalesce
    want[2, 4] = 1.0  # weight 0: padding, dropped
    np.testing.assert_allclose(dense_of(p), want, rtol=1e-6)
    idx, val = p.topk(3)  # short rows padded with -1, as the reference writes them
    np.testing.assert_array_equal(idx, [[3, 1, -1], [0, 2, -1], [4, -1, -1]])
    np.testing.assert_allclose(val, [[0.6, 0.4, 0], [0.5, 0.5, 0], [1, 0, 0]], rtol=1e-6)
    # n_teacher left out: the largest index + 1, as the reference infers it
    assert load_projection(path).shape == (3, 5)
    with pytest.raises(ConfigError, match=r"projection_map_top_3\.pt.*use_sparse_format: False"):
        load_projection(path, use_sparse_format=True)


def test_reference_sparse_file(tmp_path):
    path = tmp_path / "transformation_counts_via_multitoken.pt"
    torch.save({(0, 1): 2.0, (1, 0): torch.tensor(4.0), (2, 3): np.float32(1.0), (2, 1): 3},
               path)
    p = load_projection(path, use_sparse_format=True, n_student=4, n_teacher=5)
    want = np.zeros((4, 5))
    want[0, 1], want[1, 0], want[2, 3], want[2, 1] = 2, 4, 1, 3
    np.testing.assert_allclose(dense_of(p), want)
    with pytest.raises(ConfigError, match="use_sparse_format: True"):
        load_projection(path, use_sparse_format=False)
    empty = tmp_path / "empty.pt"
    torch.save({}, empty)
    assert load_projection(empty, n_student=3, n_teacher=2).nnz == 0


@pytest.mark.parametrize("obj", [Custom(), Hostile()])
def test_arbitrary_object_is_refused(tmp_path, capsys, obj):
    path = tmp_path / "evil.pt"
    torch.save({(0, 1): 1.0, (1, 1): obj}, path)
    pattern = r"evil\.pt: refusing to load.*\(found \S*(Custom|print)\)"
    with pytest.raises(ConfigError, match=pattern):
        load_projection(path, n_student=2, n_teacher=2)
    assert "must never run" not in capsys.readouterr().out


def test_multiplier_divides_every_format(tmp_path):
    p = random_projection(1)
    ours = tmp_path / "p.safetensors"
    dense, sparse = tmp_path / "d.pt", tmp_path / "s.pt"
    save_projection(ours, p)
    save_reference(dense, p, sparse=False, top_k=50)
    save_reference(sparse, p, sparse=True)
    for path in (ours, dense, sparse):
        q = load_projection(path, n_student=50, n_teacher=40, multiplier=4.0)
        np.testing.assert_allclose(dense_of(q), dense_of(p) / 4.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="multiplier"):
        load_projection(ours, multiplier=0)


def test_reverse_is_the_transpose(tmp_path):
    p = random_projection(2)
    r = p.reverse()
    assert r.shape == (40, 50) and r.transposed
    np.testing.assert_allclose(dense_of(r), dense_of(p).T)
    np.testing.assert_allclose(r.to_torch_sparse().to_dense().numpy(), dense_of(p).T, rtol=1e-6)
    np.testing.assert_allclose(p.to_torch_sparse().to_dense().numpy(), dense_of(p), rtol=1e-6)
    sums = r.reverse(normalize=False).reverse(normalize=True).row_sums()
    np.testing.assert_allclose(sums[sums > 0], 1.0, rtol=1e-5)
    path = tmp_path / "p.safetensors"
    save_projection(path, p)
    q = load_projection(path, project_teacher_to_student=True, multiplier=2.0)
    np.testing.assert_allclose(dense_of(q), dense_of(p).T / 2, rtol=1e-6)
    idx, val = q.topk(3)  # reverse top-k: rows are teacher ids, columns student ids
    assert idx.shape == (40, 3) and idx.max() < 50
    assert ((idx == -1) == (val == 0)).all()  # padding: index -1, weight 0


def common_teacher_ids(path) -> set[int]:
    """The reference's vocabulary partition (``xtoken_loss=False``) on a dense file: a teacher
    id is "common" when some student row lists it, i.e. every index >= 0 counts."""
    ind = torch.load(path, weights_only=True)["indices"]
    return set(ind[ind >= 0].tolist())


def test_dense_file_is_padded_with_minus_one_and_legacy_zero_padding_reads(tmp_path):
    """Rows shorter than k are padded with index -1 (weight 0); a legacy 0-padded file (what
    ``--format dense`` wrote before) still loads to the same map."""
    p = Projection.from_coo([0, 0, 2], [3, 1, 4], [0.75, 0.25, 1.0], 4, 6)  # rows 1, 3 empty
    path = tmp_path / "top3.pt"
    save_reference(path, p, sparse=False, top_k=3)
    obj = torch.load(path, weights_only=True)
    assert obj["indices"].dtype == torch.int64 and obj["indices"].shape == (4, 3)
    assert obj["indices"].tolist() == [[3, 1, -1], [-1, -1, -1], [4, -1, -1], [-1, -1, -1]]
    assert obj["likelihoods"].tolist() == [[0.75, 0.25, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]
    # teacher id 0 is in no row: a 0-padded file would make the partition count it
    assert common_teacher_ids(path) == {1, 3, 4}
    legacy = tmp_path / "legacy.pt"
    ind0 = obj["indices"].clamp(min=0)
    torch.save({"indices": ind0, "likelihoods": obj["likelihoods"]}, legacy)
    assert 0 in common_teacher_ids(legacy)  # the defect a 0-padded file causes upstream
    for f in (path, legacy):
        q = load_projection(f, use_sparse_format=False, n_student=4, n_teacher=6)
        np.testing.assert_allclose(dense_of(q), dense_of(p))
    idx0, _ = p.topk(3, pad=0)
    assert idx0.tolist() == ind0.tolist()


@pytest.mark.parametrize("obj, pattern", [
    ({"indices": torch.zeros(4, 2, dtype=torch.int64), "likelihoods": torch.zeros(4, 2)},
     r"bad\.pt: 'indices'/'likelihoods' have shape \[4, 2\].*\[3, k\] is expected"),
    ({"indices": torch.zeros(3, dtype=torch.int64), "likelihoods": torch.zeros(3)},
     r"bad\.pt: dense top-k projection needs 'indices' int64 \[3, k\].*found 'indices' "
     r"torch.int64 \[3\]"),
    ({"indices": torch.zeros(3, 2), "likelihoods": torch.zeros(3, 2)},
     r"bad\.pt: dense top-k.*torch.float32 \[3, 2\]"),
    ({"indices": [[0]], "likelihoods": [[1.0]]}, r"bad\.pt: dense top-k projection needs tensors"),
    ({"indices": torch.tensor([[7]]).repeat(3, 1), "likelihoods": torch.ones(3, 1)},
     r"bad\.pt: teacher ids must lie in \[0, 5\) for a \[3, 5\]"),
    ({(0, 1, 2): 1.0}, r"bad\.pt: sparse projection must be a dict \{\(student_id, teacher_id\)"),
    ({(0, 1): "x"}, r"bad\.pt: sparse projection must be .* numeric weights"),
    ([1, 2], r"bad\.pt: expected a dict"),
])
def test_shape_errors_name_file_and_shape(tmp_path, obj, pattern):
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    with pytest.raises(ConfigError, match=pattern):
        load_projection(path, n_student=3, n_teacher=5)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ConfigError, match=r"not found: .*nope\.pt"):
        load_projection(tmp_path / "nope.pt")
    (tmp_path / "x.txt").write_text("hello world")
    with pytest.raises(ConfigError, match=r"x\.txt: neither"):
        load_projection(tmp_path / "x.txt")
    from safetensors.numpy import save_file

    save_file({"student_ids": np.zeros(2, np.int64)}, str(tmp_path / "m.safetensors"))
    with pytest.raises(ConfigError, match=r"m\.safetensors: .*missing \['teacher_ids', 'weights'\]"):
        load_projection(tmp_path / "m.safetensors", n_student=2, n_teacher=2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 7),
                          st.floats(0.01, 5.0, allow_nan=False)), max_size=60))
def test_topk_round_trip(entries):
    """topk(k >= longest row) -> from_topk restores the coalesced COO."""
    s, t, w = (list(x) for x in zip(*entries)) if entries else ([], [], [])
    p = Projection.from_coo(s, t, w, 10, 8)
    k = max(1, int(np.bincount(p.rows, minlength=1).max()) if p.nnz else 1)
    idx, val = p.topk(k)
    assert np.all(np.diff(val, axis=1) <= 0)  # largest first
    assert ((idx == -1) == (val == 0)).all()  # padding is exactly the -1 entries
    q = Projection.from_topk(idx, val, 8)
    np.testing.assert_array_equal(q.student_ids, p.student_ids)
    np.testing.assert_array_equal(q.teacher_ids, p.teacher_ids)
    np.testing.assert_array_equal(q.weights, p.weights)
