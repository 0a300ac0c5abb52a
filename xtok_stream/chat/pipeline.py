"""Chat-mode lane: documents (JSON conversations) -> chat pack -> chat teacher 1 .. K."""

from __future__ import annotations

from typing import Any

from ..config import PipelineConfig
from .pack import ChatPacker
from .teacher import ChatTeacher


def chat_lane(config: PipelineConfig, docs: Any):
    stage = ChatPacker(docs, tokenizer=config.student.tokenizer, seq_len=config.student.seq_len,
                       chat=config.chat)
    for teacher in config.teachers:
        stage = ChatTeacher(stage, student=config.student.tokenizer, teacher=teacher,
                            max_len=config.teacher_max_len(teacher), chat=config.chat)
    return stage
