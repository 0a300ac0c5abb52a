"""The :class:`Projection` record: a sparse student x teacher vocabulary map in COO form.

Rows are student ids and columns teacher ids; ``weights[i]`` is how much of the probability of
student token ``student_ids[i]`` goes to teacher token ``teacher_ids[i]``. ``reverse()`` flips the
direction (rows become teacher ids) without touching the labels, so a reversed projection still
says which side each id belongs to::

    student_ids = [0, 1, 1]        forward (rows=student)      reverse (rows=teacher)
    teacher_ids = [5, 2, 3]   ->   [[.. 1 at col 5 ..],   ->   row 2: {1: .5}
    weights     = [1, .5, .5]       [.5 at 2, .5 at 3]]        row 3: {1: .5}, row 5: {0: 1}

Entries are kept coalesced: sorted by (student, teacher), no duplicate pairs (duplicates are
summed, as ``torch.sparse_coo_tensor(...).coalesce()`` does in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigError


def _coalesce(s: np.ndarray, t: np.ndarray, w: np.ndarray):
    """Sort by (s, t) and sum the weights of repeated pairs."""
    if s.size == 0:
        return s, t, w
    order = np.lexsort((t, s))
    s, t, w = s[order], t[order], w[order]
    new = np.empty(s.size, bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    new[1:] |= t[1:] != t[:-1]
    if new.all():
        return s, t, w
    starts = np.flatnonzero(new)
    return s[starts], t[starts], np.add.reduceat(w, starts).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Projection:
    """Sparse vocabulary map (see the module docstring). Build it with :meth:`from_coo`."""

    student_ids: np.ndarray  # int64 [nnz]
    teacher_ids: np.ndarray  # int64 [nnz]
    weights: np.ndarray  # float32 [nnz]
    n_student: int
    n_teacher: int
    transposed: bool = False  # True: rows are teacher ids (the teacher -> student map)
    meta: dict[str, Any] = field(default_factory=dict)  # file metadata / build statistics

    @classmethod
    def from_coo(cls, student_ids, teacher_ids, weights, n_student: int, n_teacher: int, *,
                 meta: dict | None = None, source: str = "projection") -> Projection:
        """Validate, coalesce and wrap COO arrays; ``source`` names the file in errors."""
        s = np.asarray(student_ids, dtype=np.int64).reshape(-1)
        t = np.asarray(teacher_ids, dtype=np.int64).reshape(-1)
        w = np.asarray(weights, dtype=np.float32).reshape(-1)
        if not (s.size == t.size == w.size):
            raise ConfigError(f"{source}: student_ids, teacher_ids and weights must have one "
                              f"length [nnz]; got {s.size}, {t.size}, {w.size}")
        for name, ids, n in (("student", s, n_student), ("teacher", t, n_teacher)):
            if ids.size and (ids.min() < 0 or ids.max() >= n):
                raise ConfigError(
                    f"{source}: {name} ids must lie in [0, {n}) for a [{n_student}, {n_teacher}] "
                    f"(student x teacher) matrix; found {int(ids.min())}..{int(ids.max())}. "
                    f"Pass the model's vocabulary size (n_{name}) if its embedding is padded")
        if not np.isfinite(w).all():
            raise ConfigError(f"{source}: weights contain NaN or inf")
        s, t, w = _coalesce(s, t, w)
        return cls(s, t, w, int(n_student), int(n_teacher), False, dict(meta or {}))

    # -- views ------------------------------------------------------------------------------
    @property
    def nnz(self) -> int:
        return int(self.weights.size)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols): (n_student, n_teacher), or the other way round once reversed."""
        ns, nt = self.n_student, self.n_teacher
        return (nt, ns) if self.transposed else (ns, nt)

    @property
    def rows(self) -> np.ndarray:
        return self.teacher_ids if self.transposed else self.student_ids

    @property
    def cols(self) -> np.ndarray:
        return self.student_ids if self.transposed else self.teacher_ids

    def row_sums(self) -> np.ndarray:
        """float64 [rows]: the sum of each row's weights (0 for an empty row)."""
        return np.bincount(self.rows, weights=self.weights, minlength=self.shape[0])

    def scaled(self, factor: float) -> Projection:
        return replace(self, weights=(self.weights * np.float32(factor)).astype(np.float32))

    def reverse(self, *, normalize: bool = False) -> Projection:
        """The map in the other direction (teacher -> student after a forward one).

        Like the reference's ``create_reverse_projection_matrix`` (sparse format) this is the
        plain transpose: weights are not changed. ``normalize=True`` rescales each new row to sum
        to 1 (empty rows stay empty), which makes the reverse a distribution map as well.
        """
        out = replace(self, transposed=not self.transposed)
        if not normalize:
            return out
        sums = out.row_sums()
        sums[sums == 0] = 1.0
        return replace(out, weights=(out.weights / sums[out.rows]).astype(np.float32))

    def to_torch_sparse(self, device=None, dtype=None):
        """A coalesced ``torch.sparse_coo_tensor`` of :attr:`shape` (float32 by default)."""
        import torch

        idx = torch.from_numpy(np.stack([self.rows, self.cols]))
        val = torch.from_numpy(self.weights.copy())
        m = torch.sparse_coo_tensor(idx, val, self.shape, dtype=dtype or torch.float32,
                                    device=device, check_invariants=False)  # ids checked
        return m.coalesce()

    def topk(self, k: int, *, pad: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Dense top-k arrays ``(indices int64 [rows, k], likelihoods float32 [rows, k])``.

        Each row keeps its ``k`` largest weights (ties: lower column id first), largest first.
        Rows with fewer entries are padded with index ``pad`` (default -1, as the reference's
        dense files: its vocabulary partition counts every index >= 0 as a mapped token, so a
        0-padded file claims teacher id 0 for every short row) and weight 0. ``pad=0`` gives
        arrays that index safely into a gather/CSR without masking.
        """
        if k < 1:
            raise ConfigError(f"top-k must be >= 1, got {k}")
        n_rows = self.shape[0]
        idx = np.full((n_rows, k), pad, np.int64)
        val = np.zeros((n_rows, k), np.float32)
        if self.nnz:
            rows, cols, w = self.rows, self.cols, self.weights
            order = np.lexsort((cols, -w, rows))
            r = rows[order]
            starts = np.searchsorted(r, np.arange(n_rows))
            rank = np.arange(r.size) - starts[r]
            keep = rank < k
            idx[r[keep], rank[keep]] = cols[order][keep]
            val[r[keep], rank[keep]] = w[order][keep]
        return idx, val

    @classmethod
    def from_topk(cls, indices, likelihoods, n_teacher: int, *, source: str = "projection",
                  meta: dict | None = None) -> Projection:
        """Inverse of :meth:`topk` for a forward map: entries with index < 0 or weight 0 are
        dropped, so both paddings read back: -1 (the reference's, and what we write) and the
        legacy index 0 with weight 0."""
        ind = np.asarray(indices)
        lik = np.asarray(likelihoods, dtype=np.float32)
        n_student = ind.shape[0]
        rows = np.broadcast_to(np.arange(n_student, dtype=np.int64)[:, None], ind.shape)
        keep = (ind >= 0) & (lik != 0)
        return cls.from_coo(rows[keep], ind[keep], lik[keep], n_student, n_teacher,
                            source=source, meta=meta)

    def __repr__(self) -> str:
        d = "teacher->student" if self.transposed else "student->teacher"
        return f"Projection({d}, shape={self.shape}, nnz={self.nnz})"
