"""Per-batch metrics for trainers: one flat ``{name: number}`` dict, ready for
``SummaryWriter.add_scalar`` or ``wandb.log``.

``batch_metrics(batch, loader)`` (also ``Loader.batch_metrics(batch)``) gives::

    batch/rows, batch/student_tokens, batch/padding_share
    teacher/{name}/tokens, /chunks, /exact_share, /student_tokens_per_chunk,
        /teacher_tokens_per_chunk, /unaligned_bytes, /truncated_tokens
    teacher/{name}/text_space, /mode/{student mode}/{teacher mode}      (with a loader)
    loader/step, loader/retries, loader/reopens, loader/skipped, loader/skipped/{kind}

The loader counters are cumulative (this rank, this iteration; skips survive a resume), the rest
is for this batch only. Names hold no spaces, so every logger takes them as they are.

The alignment mode per teacher comes from the loader's config, not from the batch, so batches
from precomputed shards and on-the-fly batches report the same (``tables.ByteTable.mode`` of
both tokenizers as a 1.0-valued key, e.g. ``teacher/wp/mode/byte_level/wordpiece-lossy``;
``text_space`` 1.0 where the teacher stage aligns by original-text positions, 0.0 for a teacher
with the student's tokenizer, which needs no alignment). A sequence whose student ids do not
spell its text falls back to ids-only alignment; that per-sequence case is not reported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=64)
def alignment_modes(student: str, teacher: str) -> tuple[str, str]:
    """(student mode, teacher mode) of a pair of ``load_tokenizer`` names (cached tables)."""
    from .align import byte_table

    return byte_table(student).mode, byte_table(teacher).mode


def _mode_metrics(config: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    student = config.student.tokenizer
    for t in config.teachers:
        identity = t.tokenizer == student
        out[f"teacher/{t.key}/text_space"] = 0.0 if identity else 1.0
        s_mode, t_mode = alignment_modes(student, t.tokenizer)
        out[f"teacher/{t.key}/mode/{s_mode}/{t_mode}"] = 1.0
    return out


def batch_metrics(batch: Mapping, loader: Any = None, *, prefix: str = "") -> dict[str, float]:
    real = float(batch["sample_mask"].sum())
    tokens = int(batch["input_lengths"].sum())
    width = batch["input_ids"].shape[1]
    out: dict[str, float] = {
        "batch/rows": real,
        "batch/student_tokens": tokens,
        "batch/padding_share": 1.0 - tokens / max(real * width, 1.0),
    }
    for name, t in batch.get("teachers", {}).items():
        out[f"teacher/{name}/tokens"] = int(t["input_lengths"].sum())
        for key, value in t["metrics"].items():
            out[f"teacher/{name}/{key}"] = value
    if loader is not None:
        out.update(_mode_metrics(loader.config))
        m = loader.metrics
        out["loader/step"] = loader.step
        out["loader/retries"] = m["retries"]
        out["loader/reopens"] = m["reopens"]
        out["loader/skipped"] = sum(m["skipped"].values())
        for kind, n in m["skipped"].items():
            out[f"loader/skipped/{kind}"] = n
    return {prefix + k: v for k, v in out.items()}
