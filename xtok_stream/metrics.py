"""Per-batch metrics for trainers: one flat ``{name: number}`` dict, ready for
``SummaryWriter.add_scalar`` or ``wandb.log``.

``batch_metrics(batch, loader)`` (also ``Loader.batch_metrics(batch)``) gives::

    batch/rows, batch/student_tokens, batch/padding_share
    teacher/{name}/tokens, /chunks, /exact_share, /student_tokens_per_chunk,
        /teacher_tokens_per_chunk, /unaligned_bytes, /truncated_tokens
    loader/step, loader/retries, loader/reopens, loader/skipped, loader/skipped/{kind}

The loader counters are cumulative (this rank, this iteration; skips survive a resume), the rest
is for this batch only. Names hold no spaces, so every logger takes them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
        m = loader.metrics
        out["loader/step"] = loader.step
        out["loader/retries"] = m["retries"]
        out["loader/reopens"] = m["reopens"]
        out["loader/skipped"] = sum(m["skipped"].values())
        for kind, n in m["skipped"].items():
            out[f"loader/skipped/{kind}"] = n
    return {prefix + k: v for k, v in out.items()}
