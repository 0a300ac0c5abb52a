"""The batch container of the NeMo-RL drop-in: NeMo-RL's own ``BatchedDataDict`` when ``nemo_rl``
is importable, else :class:`BatchedDict`, a small ``dict`` subclass with the methods NeMo-RL's
training loop calls on a collated batch (``.to()``, ``.shard_by_batch_size()``, ``.size``,
``.select_indices()``, ``.slice()``, ``.get_multimodal_dict()``).

``nemo_rl`` is an optional import, never a dependency (it is not on PyPI). What the fallback
does not do (see ``docs/compat.md``): no multimodal ``PackedTensor`` values, so
``get_multimodal_dict`` is always ``{}``; ``shard_by_batch_size`` takes no dynamic batching or
sequence packing arguments; no ``all_gather``/``reduce`` (they need a process group).

``shard_by_batch_size`` follows upstream: the batch is cut into chunks of ``batch_size`` rows,
each chunk into ``shards`` equal parts, and shard ``i`` gathers part ``i`` of every chunk::

    rows [A A B B C C D D], batch_size=2, shards=2  ->  shard 0 [A B C D], shard 1 [A B C D]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import ConfigError


class BatchedDict(dict):
    """A ``dict`` of per-row values (tensors with rows on dim 0, or lists) with NeMo-RL's
    ``BatchedDataDict`` methods. Keys in :attr:`UNBATCHED` (``per_teacher_ct_data``: one entry
    per teacher, not per row; shard its ``teacher_data`` instead) and values that are neither a
    tensor nor a list are copied whole into every shard; a tensor or list of another length
    than the batch is an error, never cut silently."""

    UNBATCHED = frozenset({"per_teacher_ct_data"})

    @property
    def size(self) -> int:
        """Rows in the batch: the length of the first tensor or list value."""
        for k, v in self.items():
            if k in self.UNBATCHED:
                continue
            if isinstance(v, torch.Tensor):
                return int(v.shape[0])
            if isinstance(v, list):
                return len(v)
        return 0

    def to(self, device: Any) -> BatchedDict:
        """Move every tensor (also inside nested BatchedDicts) to ``device``, in place, and
        return self, as upstream does."""
        for k, v in self.items():
            if isinstance(v, torch.Tensor):
                self[k] = v.to(device)
            elif isinstance(v, BatchedDict):
                v.to(device)
        return self

    def select_indices(self, indices: Any) -> BatchedDict:
        """A new batch holding rows ``indices`` (a list or a 1-D integer tensor), in that order."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        rows = idx.tolist()
        out = type(self)()
        n = self.size
        for k, v in self.items():
            if k in self.UNBATCHED or not isinstance(v, (torch.Tensor, list)):
                out[k] = v
                continue
            if len(v) != n:
                raise ConfigError(f"BatchedDict key '{k}' has {len(v)} rows, the batch {n}; "
                                  f"cannot select rows of it")
            if isinstance(v, torch.Tensor):
                out[k] = v[idx.to(v.device)]
            else:
                out[k] = [v[i] for i in rows]
        return out

    def slice(self, start: int, end: int) -> BatchedDict:
        """Rows ``start:end``."""
        return self.select_indices(list(range(start, end)))

    def shard_by_batch_size(self, shards: int, batch_size: int | None = None,
                            allow_uneven_shards: bool = False,
                            dynamic_batching_args: Any = None,
                            sequence_packing_args: Any = None) -> list[BatchedDict]:
        """``shards`` batches, as upstream's method (see the module docstring)."""
        if dynamic_batching_args is not None or sequence_packing_args is not None:
            raise ConfigError(
                "shard_by_batch_size: dynamic_batching_args/sequence_packing_args need NeMo-RL's "
                "own BatchedDataDict; install nemo_rl (the collator then returns its type)")
        total = self.size
        batch_size = total if batch_size is None else int(batch_size)
        if shards < 1 or batch_size < 1 or total % batch_size:
            raise ConfigError(f"shard_by_batch_size: the batch has {total} rows, which is not a "
                              f"multiple of batch_size={batch_size} (shards={shards})")
        if not allow_uneven_shards and batch_size % shards:
            raise ConfigError(f"shard_by_batch_size: batch_size={batch_size} is not a multiple of "
                              f"shards={shards}; pass allow_uneven_shards=True")
        part = math.ceil(batch_size / shards) if allow_uneven_shards else batch_size // shards
        out = []
        for s in range(shards):
            rows = [c + r for c in range(0, total, batch_size)
                    for r in range(s * part, min((s + 1) * part, batch_size))]
            out.append(self.select_indices(rows))
        return out

    def get_multimodal_dict(self, as_tensors: bool = False, device: Any = None) -> dict:
        """Multimodal values: none without nemo_rl (no ``PackedTensor``), so always ``{}``."""
        return {}


@functools.lru_cache(maxsize=1)
def nemo_rl_api() -> tuple[type, Callable, Callable] | None:
    """``(BatchedDataDict, rl_collate_fn, batched_message_log_to_flat_message)`` from nemo_rl, or
    None when it is not importable (or too old to have them). Looked up once per process: a
    failed import is not cached by Python and would search the path on every batch."""
    try:
        from nemo_rl.data.collate_fn import rl_collate_fn
        from nemo_rl.data.llm_message_utils import batched_message_log_to_flat_message
        from nemo_rl.distributed.batched_data_dict import BatchedDataDict
    except ImportError:
        return None
    return BatchedDataDict, rl_collate_fn, batched_message_log_to_flat_message
