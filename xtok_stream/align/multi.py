"""Joint refinement: one chunking of the student axis that works for several teachers.

Given K teachers' alignments against the same student ids, a student offset can end a joint
chunk only if no chunk of *any* teacher straddles it. Cutting at exactly those offsets gives the
finest partition of the student tokens in which every joint chunk is a union of whole chunks of
every teacher (the coarsest-common chunking the distillation loss needs: one chunk id per student
token, valid for all teachers). Tokens a teacher left unaligned count as single-token pieces.

Per teacher, a joint chunk's teacher span is the hull of the teacher spans of its chunks (chunks
are monotone, so it is their union plus any unaligned teacher tokens between them), and it is
exact when every student token of it sits in an exact chunk of that teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .aligner import Aligner, Alignment


@dataclass(frozen=True)
class JointAlignment:
    student_spans: np.ndarray  # int32 [J, 2]: a partition of [0, n_student)
    student_chunk_ids: np.ndarray  # int32 [n_student]: joint chunk of each student token
    teacher_spans: list[np.ndarray]  # per teacher int32 [J, 2]; (-1, -1) where not aligned
    aligned: np.ndarray  # bool [n_teachers, J]: the joint chunk holds a chunk of that teacher
    exact: np.ndarray  # bool [n_teachers, J]

    def __len__(self) -> int:
        return int(self.student_spans.shape[0])

    @property
    def all_exact(self) -> np.ndarray:
        """bool [J]: exact for every teacher."""
        return self.exact.all(axis=0)


def _straddled(a: Alignment, n: int) -> np.ndarray:
    """bool [n+1]: offset p lies strictly inside a chunk's student span."""
    s0, s1 = a.student_spans[:, 0], a.student_spans[:, 1]
    diff = np.bincount(s0 + 1, minlength=n + 2)[: n + 2] - np.bincount(s1, minlength=n + 2)[: n + 2]
    return np.cumsum(diff)[: n + 1] > 0


def joint_refinement(alignments: Sequence[Alignment], n_student: int) -> JointAlignment:
    """Joint chunking of ``n_student`` tokens from alignments sharing the student ids."""
    if not alignments:
        raise ConfigError("joint_refinement needs at least one alignment")
    for k, a in enumerate(alignments):
        if a.n_student != n_student:
            raise ConfigError(f"alignment {k} covers {a.n_student} student tokens, not {n_student}")
    n = int(n_student)
    cut = np.ones(n + 1, bool)
    for a in alignments:
        cut &= ~_straddled(a, n)
    bounds = np.flatnonzero(cut).astype(np.int32)  # includes 0 and n
    spans = np.stack([bounds[:-1], bounds[1:]], axis=1)
    n_joint = len(spans)
    cid = (np.cumsum(cut[:n]) - 1).astype(np.int32)
    joint_len = spans[:, 1] - spans[:, 0]
    t_spans, aligned, exact = [], np.zeros((len(alignments), n_joint), bool), []
    for k, a in enumerate(alignments):
        span = np.full((n_joint, 2), -1, np.int32)
        if len(a):
            jid = cid[a.student_spans[:, 0]]
            lo = np.full(n_joint, np.iinfo(np.int32).max, np.int32)
            hi = np.full(n_joint, -1, np.int32)
            np.minimum.at(lo, jid, a.teacher_spans[:, 0])
            np.maximum.at(hi, jid, a.teacher_spans[:, 1])
            aligned[k] = hi >= 0
            span[aligned[k]] = np.stack([lo, hi], axis=1)[aligned[k]]
            s_len = a.student_spans[:, 1] - a.student_spans[:, 0]
            exact_tokens = np.bincount(jid, weights=s_len * a.exact, minlength=n_joint)
            exact.append(exact_tokens == joint_len)
        else:
            exact.append(np.zeros(n_joint, bool))
        t_spans.append(span)
    exact_arr = np.array(exact, dtype=bool).reshape(len(alignments), n_joint)
    return JointAlignment(spans, cid, t_spans, aligned, exact_arr)


class MultiAligner:
    """One student tokenizer, several teachers: per-teacher alignments plus their joint chunking."""

    def __init__(self, student_tokenizer: Any, teacher_tokenizers: Sequence[Any], **kwargs: Any):
        if not teacher_tokenizers:
            raise ConfigError("MultiAligner needs at least one teacher tokenizer")
        self.aligners = [Aligner(student_tokenizer, t, **kwargs) for t in teacher_tokenizers]

    def warmup(self) -> MultiAligner:
        for a in self.aligners:
            a.warmup()
        return self

    def align(
        self, student_ids: Any, teacher_ids: Sequence[Any]
    ) -> tuple[list[Alignment], JointAlignment]:
        if len(teacher_ids) != len(self.aligners):
            raise ConfigError(f"got {len(teacher_ids)} teacher id lists for {len(self.aligners)} teachers")
        per = [a.align(student_ids, t) for a, t in zip(self.aligners, teacher_ids)]
        return per, joint_refinement(per, per[0].n_student)
