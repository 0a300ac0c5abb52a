"""Eval records tokenized for the student and every teacher, aligned with the pipeline's aligner.

A distillation eval compares teacher and student on the *same* prompt, so each record is encoded
once per tokenizer and the teacher ids are aligned to the student ids with
the pipeline's :class:`~xtok_stream.align.Aligner` (per teacher, with that teacher's
``max_comb_len``) plus :func:`~xtok_stream.align.joint_refinement`, the chunking all teachers
share. Prompts are encoded without special tokens by default, as the packer does;
``add_special_tokens=True`` lets each tokenizer follow its own convention (a BOS it adds stays
unpaired in the alignment unless the other side has one too).

:class:`EvalDataset` is a map-style ``torch.utils.data.Dataset`` of :class:`TokenizedEval`.
Construction does no tokenizer I/O (names are resolved on first access, once per process), so it
pickles cheaply into DataLoader workers; use ``collate_fn=EvalDataset.collate`` (a list).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.utils.data

from ..align import Aligner, Alignment, JointAlignment, joint_refinement
from ..errors import ConfigError
from .record import EvalRecord


@dataclass(frozen=True)
class TokenizedEval:
    record: EvalRecord
    student_ids: np.ndarray  # int64 [n_student]
    teacher_ids: list[np.ndarray]  # per teacher int64 [n_teacher_k]
    alignments: list[Alignment]  # per teacher, against student_ids
    joint: JointAlignment  # one chunking of the student ids valid for every teacher

    @property
    def task_id(self) -> str:
        return self.record.task_id


def _teacher_spec(t: Any, i: int) -> tuple[Any, dict]:
    """(tokenizer, aligner kwargs) of a name, a tokenizer object or a ``TeacherConfig``/dict."""
    if isinstance(t, str) or hasattr(t, "backend_tokenizer"):
        return t, {}
    get = t.get if isinstance(t, dict) else lambda k, d=None: getattr(t, k, d)
    name = get("tokenizer")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"teachers[{i}].tokenizer is missing or not a string")
    comb = get("max_comb_len")
    return name, ({"max_comb_len": int(comb)} if comb is not None else {})


def pipeline_tokenizers(config: Any) -> tuple[str, list[Any]]:
    """(student tokenizer, teacher entries) of a ``PipelineConfig``; each teacher keeps its own
    ``max_comb_len`` when aligned, as in the pipeline's teacher stage."""
    teachers = list(config.teachers)
    for i, t in enumerate(teachers):
        _teacher_spec(t, i)  # fail early, naming the entry
    return config.student.tokenizer, teachers


class EvalTokenizer:
    """Encodes prompts for one student and its teachers and aligns them (built lazily).

    ``teachers`` holds names, tokenizer objects or ``TeacherConfig`` entries (whose
    ``max_comb_len`` is used). ``add_special_tokens`` is passed to every tokenizer: each then
    follows its own convention (BOS or not), as the teacher stage does."""

    def __init__(self, student: Any, teachers: Sequence[Any], *, add_special_tokens: bool = False,
                 **aligner_kwargs: Any):
        if not teachers:
            raise ConfigError("an eval view needs at least one teacher tokenizer (teachers=[...])")
        self.student, self.teachers = student, list(teachers)
        self.specs = [_teacher_spec(t, i) for i, t in enumerate(self.teachers)]
        self.add_special_tokens = add_special_tokens
        self.aligner_kwargs = aligner_kwargs
        self._aligners: list[Aligner] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_aligners": None}  # workers rebuild from the cached tables

    @property
    def aligners(self) -> list[Aligner]:
        if self._aligners is None:
            self._aligners = [Aligner(self.student, tok, **{**self.aligner_kwargs, **kw})
                              for tok, kw in self.specs]
        return self._aligners

    def _encode(self, tok: Any, text: str) -> tuple[np.ndarray, list]:
        enc = tok(text, add_special_tokens=self.add_special_tokens, return_offsets_mapping=True)
        return np.asarray(enc["input_ids"], dtype=np.int64), enc["offset_mapping"]

    def __call__(self, record: EvalRecord) -> TokenizedEval:
        aligners = self.aligners
        s_ids, s_off = self._encode(aligners[0].student_tokenizer, record.prompt)
        t_enc = [self._encode(a.teacher_tokenizer, record.prompt) for a in aligners]
        t_ids = [ids for ids, _ in t_enc]
        # exact = same span of the prompt, by the tokenizers' own offsets (align/text.py)
        per = [a.align_text(record.prompt, s_ids, t, s_off, off)
               for a, (t, off) in zip(aligners, t_enc)]
        return TokenizedEval(record, s_ids, t_ids, per, joint_refinement(per, len(s_ids)))


_CACHE: dict[tuple, EvalTokenizer] = {}


def tokenize_record(record: EvalRecord, student: Any = "pkg:qwen2",
                    teachers: Sequence[Any] = ("pkg:mistral-v3", "pkg:deepseek-v4"),
                    *, add_special_tokens: bool = False) -> TokenizedEval:
    """One record for ``student`` and every teacher (names or tokenizer objects).

    With names, the encoder is kept per process; tokenizer objects build a (cheap) new one,
    their byte tables being cached per object anyway."""
    key = (student, tuple(teachers), add_special_tokens)
    if not all(isinstance(x, str) for x in (student, *teachers)):
        return EvalTokenizer(student, teachers, add_special_tokens=add_special_tokens)(record)
    if key not in _CACHE:
        _CACHE[key] = EvalTokenizer(student, teachers, add_special_tokens=add_special_tokens)
    return _CACHE[key](record)


class EvalDataset(torch.utils.data.Dataset):
    """Map-style dataset: ``ds[i]`` is ``records[i]`` as a :class:`TokenizedEval`."""

    def __init__(self, records: Sequence[EvalRecord], student: Any, teachers: Sequence[Any], *,
                 add_special_tokens: bool = False, **aligner_kwargs: Any):
        self.records = list(records)
        self.encoder = EvalTokenizer(student, teachers, add_special_tokens=add_special_tokens,
                                     **aligner_kwargs)

    @classmethod
    def from_pipeline(cls, records: Sequence[EvalRecord], config: Any, **kwargs: Any) -> EvalDataset:
        student, teachers = pipeline_tokenizers(config)
        return cls(records, student, teachers, **kwargs)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> TokenizedEval:
        return self.encoder(self.records[index])

    @staticmethod
    def collate(batch: list[TokenizedEval]) -> list[TokenizedEval]:
        return list(batch)
