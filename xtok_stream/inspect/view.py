"""One row as the model sees it: student tokens, and per teacher its tokens and chunk pairing.

:func:`row_view` reads a batch row (the chunk maps and ``chunk_exact`` the trainer gets, not a
re-computation) and adds, for every token in no chunk, *why* (an
:class:`~xtok_stream.align.UnalignedReason` name read off the token's role and place: the batch
only carries ``-1``). :func:`eval_view` builds the same view for a tokenized eval record.
Both renderers (``text.py``, ``html.py``) take a :class:`RowView`; they never touch tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..align import byte_table
from ..errors import ConfigError
from ..tokenizers import load_tokenizer


@dataclass(frozen=True)
class Tokens:
    """One tokenization of the row: ids and what each token shows (its bytes, or its name)."""

    ids: np.ndarray  # int64 [n]
    labels: list[str]
    special: np.ndarray  # bool [n]: a special token (no text bytes)


@dataclass(frozen=True)
class TeacherView:
    name: str
    tokens: Tokens
    student_chunk: np.ndarray  # int32 [n_student], -1 = in no chunk
    teacher_chunk: np.ndarray  # int32 [n_teacher]
    exact: np.ndarray  # bool [K]
    student_reasons: dict[int, str]  # unaligned student token -> reason
    teacher_reasons: dict[int, str]

    @property
    def num_chunks(self) -> int:
        return int(self.exact.shape[0])

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Per chunk (first, end) token positions on the student and on the teacher side."""
        return _spans(self.student_chunk, self.num_chunks), _spans(self.teacher_chunk,
                                                                    self.num_chunks)

    def summary(self, student_bytes: np.ndarray, teacher_bytes: np.ndarray) -> dict[str, Any]:
        k = max(self.num_chunks, 1)
        s_un, t_un = self.student_chunk < 0, self.teacher_chunk < 0
        return {
            "teacher": self.name, "teacher_tokens": int(self.tokens.ids.shape[0]),
            "chunks": self.num_chunks, "exact_chunks": int(self.exact.sum()),
            "exact_share": float(self.exact.sum() / k),
            "student_tokens_per_chunk": float((~s_un).sum() / k),
            "teacher_tokens_per_chunk": float((~t_un).sum() / k),
            "unaligned_student_tokens": int(s_un.sum()),
            "unaligned_teacher_tokens": int(t_un.sum()),
            "unaligned_bytes": int(student_bytes[s_un].sum() + teacher_bytes[t_un].sum()),
        }


@dataclass(frozen=True)
class RowView:
    title: str
    student_name: str
    student: Tokens
    pieces: list[tuple[int, str]]  # (first student token, label) per document piece
    teachers: list[TeacherView]
    marks: dict[int, str] = field(default_factory=dict)  # other boundaries (chat messages)
    student_bytes: np.ndarray | None = None  # int [n]: text bytes per token
    teacher_bytes: list[np.ndarray] = field(default_factory=list)

    def summaries(self) -> list[dict[str, Any]]:
        return [t.summary(self.student_bytes, tb) for t, tb in zip(self.teachers, self.teacher_bytes)]


def _spans(chunk: np.ndarray, k: int) -> np.ndarray:
    out = np.full((k, 2), -1, np.int64)
    pos = np.flatnonzero(chunk >= 0)
    c = chunk[pos]
    if len(pos):
        out[c[::-1], 0] = pos[::-1]  # first occurrence wins
        out[c, 1] = pos + 1  # last occurrence wins
    return out


def tokens_of(tokenizer: Any, ids: np.ndarray) -> tuple[Tokens, np.ndarray]:
    """Labels for ``ids`` (UTF-8 text of the token's bytes, ``\\xNN`` for a partial character,
    the token's name for a special) and the byte count of each token."""
    table = byte_table(tokenizer)
    ids = np.asarray(ids, dtype=np.int64)
    lengths = table.lengths[ids].astype(np.int64)
    special = lengths == 0
    labels = []
    for t, sp in zip(ids.tolist(), special.tolist()):
        if sp:
            labels.append(str(tokenizer.convert_ids_to_tokens(t)))
        else:
            labels.append(table.token_bytes(t).decode("utf-8", "backslashreplace"))
    return Tokens(ids, labels, special), lengths


def _reasons(a, side: str) -> dict[int, str]:
    return {i: r.name.lower() for i, r in a.unaligned(side)}


def _why(table, ids, chunk) -> dict[int, str]:
    """Why each token in no chunk is there, read off the batch's own chunk map (re-aligning the
    row could disagree with the stage, which aligned in text space on the pieces' text): a
    token after the side's last chunked token is a truncated tail (the other side stopped
    first); before it, a special token (BOS/EOS/control/pad/unk) in no chunk had no partner
    there."""
    from ..align.tables import Role

    names = {Role.PAD: "pad", Role.UNK: "unk"}
    chunk = np.asarray(chunk)
    inside = np.flatnonzero(chunk >= 0)
    last = int(inside[-1]) if len(inside) else -1
    out = {}
    for i in np.flatnonzero(chunk < 0).tolist():
        role = Role(int(table.role[int(ids[i])]))
        if i > last:
            out[i] = "truncated_tail"
        elif role != Role.TEXT:
            out[i] = names.get(role, "special_unpaired")
        else:
            out[i] = "unaligned"
    return out


def _teacher(name: str, s_tok, t_tok, s_ids, t_ids, s_chunk, t_chunk, exact, max_comb_len,
             identity: bool) -> tuple[TeacherView, np.ndarray]:
    tokens, t_bytes = tokens_of(t_tok, t_ids)
    if identity:  # the teacher stage's identity path: only a truncated tail can be unaligned
        s_why = {int(i): "truncated_tail" for i in np.flatnonzero(s_chunk < 0)}
        t_why: dict[int, str] = {}
    else:
        s_why = _why(byte_table(s_tok), s_ids, s_chunk)
        t_why = _why(byte_table(t_tok), t_ids, t_chunk)
    return TeacherView(name, tokens, np.asarray(s_chunk, np.int32), np.asarray(t_chunk, np.int32),
                       np.asarray(exact, bool), s_why, t_why), t_bytes


def _teacher_specs(config: Any, teachers: Mapping[str, Any] | None, student: str | None):
    if config is not None:
        student = student or config.student.tokenizer
        specs = {t.key: (t.tokenizer, t.max_comb_len) for t in config.teachers}
    else:
        specs = {k: (v, None) for k, v in (teachers or {}).items()}
    if student is None:
        raise ConfigError("inspect needs the tokenizers: pass config=PipelineConfig or "
                          "student='pkg:...' and teachers={name: tokenizer}")
    return student, specs


def row_view(batch: Mapping, row: int, *, config: Any = None, student: str | None = None,
             teachers: Mapping[str, Any] | None = None, only: Sequence[str] | None = None,
             marks: Mapping[int, str] | None = None, title: str | None = None) -> RowView:
    """The view of ``batch`` row ``row``; tokenizers from ``config`` (a PipelineConfig) or from
    ``student``/``teachers`` (``{batch teacher name: tokenizer spec}``); ``only`` keeps some
    teachers. Message boundaries come from ``marks`` ({student token: label}) or, when the
    batch carries one, a ``message_ids`` [B, T] tensor."""
    B = int(batch["input_ids"].shape[0])
    if not 0 <= row < B:
        raise ConfigError(f"row {row} is out of range: the batch has {B} rows (--row)")
    if float(batch["sample_mask"][row]) == 0:
        raise ConfigError(f"row {row} is a padding row (sample_mask 0): pick another --row")
    student, specs = _teacher_specs(config, teachers, student)
    names = list(batch.get("teachers", {}))
    if only:
        missing = [n for n in only if n not in names]
        if missing:
            raise ConfigError(f"teacher(s) {missing} not in the batch; it has {names} (--teacher)")
        names = [n for n in names if n in only]
    s_tok = load_tokenizer(student)
    n = int(batch["input_lengths"][row])
    s_ids = batch["input_ids"][row, :n].numpy()
    s_tokens, s_bytes = tokens_of(s_tok, s_ids)
    doc = batch["doc_ids"][row, :n].numpy()
    starts = [0] + [int(i) for i in np.flatnonzero(doc[1:] != doc[:-1]) + 1] if n else []
    pieces = [(pos, f"{k} [{c0}:{c1}]") for pos, (k, c0, c1) in zip(starts, batch["pieces"][row])]
    views, t_bytes = [], []
    for name in names:
        if name not in specs:
            raise ConfigError(f"no tokenizer for teacher {name!r}: pass teachers={{{name!r}: ...}}")
        spec, comb = specs[name]
        t = batch["teachers"][name]
        m = int(t["input_lengths"][row])
        k = int(t["num_chunks"][row])
        v, tb = _teacher(name, s_tok, load_tokenizer(spec), s_ids, t["input_ids"][row, :m].numpy(),
                         t["student_chunk_id"][row, :n].numpy(),
                         t["teacher_chunk_id"][row, :m].numpy(),
                         t["chunk_exact"][row, :k].numpy(), comb, spec == student)
        views.append(v)
        t_bytes.append(tb)
    all_marks = dict(marks or {})
    if "message_ids" in batch:
        msg = batch["message_ids"][row, :n].numpy()
        for i in np.flatnonzero(msg[1:] != msg[:-1]) + 1:
            all_marks.setdefault(int(i), f"message {int(msg[i])}")
    return RowView(title or f"row {row}", student, s_tokens, pieces, views, all_marks,
                   s_bytes, t_bytes)


def eval_view(tokenized: Any, *, student: str, teachers: Sequence[str],
              names: Sequence[str] | None = None) -> RowView:
    """The view of a :class:`~xtok_stream.evals.tokenized.TokenizedEval` (its prompt, the
    student ids and each teacher's ids and alignment); ``teachers`` are the tokenizer specs in
    the record's teacher order."""
    from ..align.chunks import chunk_ids

    if len(teachers) != len(tokenized.alignments):
        raise ConfigError(f"{len(teachers)} teacher tokenizers for "
                          f"{len(tokenized.alignments)} alignments of {tokenized.task_id}")
    s_tok = load_tokenizer(student)
    s_tokens, s_bytes = tokens_of(s_tok, tokenized.student_ids)
    views, t_bytes = [], []
    for i, (spec, a, t_ids) in enumerate(zip(teachers, tokenized.alignments, tokenized.teacher_ids)):
        tokens, tb = tokens_of(load_tokenizer(spec), t_ids)
        name = names[i] if names else spec
        views.append(TeacherView(name, tokens, chunk_ids(a.student_spans, a.n_student),
                                 chunk_ids(a.teacher_spans, a.n_teacher), np.asarray(a.exact, bool),
                                 _reasons(a, "student"), _reasons(a, "teacher")))
        t_bytes.append(tb)
    return RowView(tokenized.task_id, student, s_tokens, [(0, tokenized.task_id)], views, {},
                   s_bytes, t_bytes)


@dataclass(frozen=True)
class Segment:
    """A run of the row in order: chunk ``k`` (or ``k = -1``: tokens in no chunk) with its
    student and teacher token ranges (half-open)."""

    k: int
    s: tuple[int, int]
    t: tuple[int, int]


def segments(view: TeacherView) -> list[Segment]:
    """Chunks and the unaligned runs between them, in row order (chunks are monotone on both
    sides, so one merge walk suffices)."""
    s_sp, t_sp = view.spans()
    out: list[Segment] = []
    i = j = 0
    for k in range(view.num_chunks):
        s0 = int(s_sp[k, 0]) if s_sp[k, 0] >= 0 else i
        t0 = int(t_sp[k, 0]) if t_sp[k, 0] >= 0 else j
        if s0 > i or t0 > j:
            out.append(Segment(-1, (i, s0), (j, t0)))
        i = int(s_sp[k, 1]) if s_sp[k, 1] >= 0 else s0
        j = int(t_sp[k, 1]) if t_sp[k, 1] >= 0 else t0
        out.append(Segment(k, (s0, i), (t0, j)))
    n, m = len(view.student_chunk), len(view.teacher_chunk)
    if i < n or j < m:
        out.append(Segment(-1, (i, n), (j, m)))
    return out
