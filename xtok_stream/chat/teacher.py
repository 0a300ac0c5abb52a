"""``chat teacher``: one teacher's rendering and alignment of every packed conversation part.

The teacher renders each piece's messages in its own template (``render.py``) and keeps the
same messages (a part cut inside a message keeps the same characters of that content). Per
message, in order::

    student  <|im_start|>user\\n | What is 2+2? | <|im_end|>\\n
    teacher  [INST]             | ▁What▁is...  | [/INST]
             head <-> head        content: Aligner    tail <-> tail

contents (the same text on both sides) go through the byte-exact aligner; a template head or
tail becomes one non-exact chunk when both sides have one, else its tokens are unaligned with
reason ``TEMPLATE_UNPAIRED``. So no chunk spans two messages. The teacher's ``loss_mask`` is its
own rendering's. Cursor: the source's.
"""

from __future__ import annotations

import numpy as np
import torch

from ..align import UnalignedReason
from ..config import TeacherConfig
from ..errors import DecodeError
from ..records import PackedSequence
from ..stages.teacher import _aligner
from ..stages.teacher import collate as collate_teacher
from ..state import StatefulMap
from .config import ChatConfig
from .render import renderer

TEMPLATE_UNPAIRED = 16  # beside align.UnalignedReason's codes: a template run with no partner


class ChatTeacher(StatefulMap):
    KIND, VERSION = "chat_teacher", 1

    def __init__(self, source, *, student: str, teacher: TeacherConfig, max_len: int,
                 chat: ChatConfig):
        self.source, self.student, self.teacher, self.max_len = source, student, teacher, max_len
        self.chat, self.name = chat, teacher.key
        self._ready = False

    def _setup(self) -> None:
        self._renderer = renderer(self.teacher.tokenizer, self.chat.templates.get(self.name),
                                  f"chat template of teacher {self.name}",
                                  self.chat.template_sha256(self.name))
        self._aligner = _aligner(self.student, self.teacher.tokenizer, self.teacher.max_comb_len)
        self._ready = True

    def __iter__(self) -> ChatTeacher:
        return self

    def __next__(self) -> PackedSequence:
        seq = next(self.source)
        if not self._ready:
            self._setup()
        seq.extras[self.name] = self._tokenize_align(seq)
        return seq

    def _regions(self, seq: PackedSequence):
        """Teacher ids, loss mask and per-message layout for every piece, in sequence order."""
        ids, mask, layouts, n = [], [], [], 0
        for piece, cp in zip(seq.pieces, seq.extras["_chat"]):
            try:
                r = self._renderer.render(cp.messages)
            except ValueError as exc:
                raise DecodeError(str(exc), url=cp.shard, key=piece.key,
                                  field=self.chat.messages_field) from exc
            t0, t1 = int(r.bounds[cp.lo]), int(r.bounds[cp.hi])
            if cp.cut_chars is not None:  # the same characters of the cut content
                k = cp.hi - 1
                keep = r.content_chars[k, 0] + cp.cut_chars
                c0, c1 = int(r.content[k, 0]), int(r.content[k, 1])
                t1 = c0 + int(np.searchsorted(r.ends[c0:c1], keep, "right")) if cp.cut_chars else c0
            shift = n - t0
            layouts.append((np.clip(r.content[cp.lo : cp.hi], t0, t1) + shift,
                            np.clip(r.bounds[cp.lo : cp.hi + 1], t0, t1) + shift, r, shift))
            ids.append(r.ids[t0:t1])
            mask.append(r.loss_mask(self.chat.mask_end_of_turn)[t0:t1])
            n += t1 - t0
        return ids, mask, layouts

    def _tokenize_align(self, seq: PackedSequence) -> dict:
        parts, masks, layouts = self._regions(seq)
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        dropped = max(0, len(ids) - self.max_len)
        ids, L = ids[: self.max_len], self.max_len
        s_ids = seq.input_ids
        ss, ts, ex = [], [], []
        s_un, t_un = [], []
        totals = np.zeros(2)  # unaligned bytes, chunks over max_comb (for the metrics)

        def pair(sa, sb, ta, tb, why=TEMPLATE_UNPAIRED):
            cut = tb > L  # the teacher's side runs past max_len
            tb, ta = min(tb, L), min(ta, L)
            if sb > sa and tb > ta:
                ss.append((sa, sb))
                ts.append((ta, tb))
                ex.append(False)
            else:
                why = int(UnalignedReason.TRUNCATED_TAIL) if cut and tb == ta else why
                s_un.extend((i, why) for i in range(sa, sb))
                t_un.extend((i, why) for i in range(ta, tb))

        for cp, (t_content, t_bounds, _, _) in zip(seq.extras["_chat"], layouts):
            for j in range(cp.hi - cp.lo):
                (sa, sb), (ta, tb) = cp.content[j], t_content[j]
                pair(int(cp.bounds[j]), int(sa), int(t_bounds[j]), int(ta))  # heads
                ta, tb = min(int(ta), L), min(int(tb), L)
                if sb > sa and tb > ta:
                    a = self._aligner.align(s_ids[sa:sb], ids[ta:tb])
                    ss.extend(a.student_spans + sa)
                    ts.extend(a.teacher_spans + ta)
                    ex.extend(a.exact)
                    s_un.extend(zip(a.student_unaligned + sa, a.student_unaligned_reason))
                    t_un.extend(zip(a.teacher_unaligned + ta, a.teacher_unaligned_reason))
                    totals[0] += a.metrics.unaligned_bytes
                else:  # one side has no content tokens here (cut by seq_len or max_len)
                    pair(int(sa), int(sb), int(t_content[j][0]), int(t_content[j][1]),
                         int(UnalignedReason.TRUNCATED_TAIL))
                pair(int(cp.content[j][1]), int(cp.bounds[j + 1]), int(t_content[j][1]),
                     int(t_bounds[j + 1]))  # tails
        s_spans = np.array(ss, np.int32).reshape(-1, 2)
        t_spans = np.array(ts, np.int32).reshape(-1, 2)
        exact = np.array(ex, bool)
        s_n = (s_spans[:, 1] - s_spans[:, 0]).sum()
        t_n = (t_spans[:, 1] - t_spans[:, 0]).sum()
        return {"input_ids": ids, "student_spans": s_spans, "teacher_spans": t_spans,
                "exact": exact, "n_student": seq.length,
                "loss_mask": np.concatenate(masks)[: self.max_len] if masks else np.zeros(0, np.uint8),
                "student_unaligned": np.array(s_un, np.int64).reshape(-1, 2),
                "teacher_unaligned": np.array(t_un, np.int64).reshape(-1, 2),
                "metrics": np.array([len(exact), exact.sum(), s_n, t_n, totals[0], dropped],
                                    np.float64)}


def collate(views: list[dict | None], *, width: int, **kwargs) -> dict:
    """The teacher's tensors (``stages/teacher.py``) plus its ``loss_mask`` (float32 [B,T_t])."""
    out = collate_teacher(views, width=width, **kwargs)
    mask = np.zeros((len(views), width), np.float32)
    for b, v in enumerate(views):
        if v is not None:
            mask[b, : len(v["loss_mask"])] = v["loss_mask"]
    out["loss_mask"] = torch.from_numpy(mask)
    return out
