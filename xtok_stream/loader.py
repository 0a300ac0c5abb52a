"""The loader a training loop iterates on each DDP rank; its state is what the trainer consumed.

Each DataLoader worker runs one *consumer* (the lanes it owns, muxed and batched) and sends every
batch with the consumer's cursor *after* that batch. Workers never stop: an exhausted worker sends
"done" markers instead, so torch's DataLoader keeps its strict worker round-robin and the order of
batches is a pure function of the state. The loader keeps the cursor that travelled with the last
batch it *handed out*, never what workers read ahead, so ``state_dict()`` is exact at any step.

Resume: workers are rotated so that physical worker 0 plays the logical worker whose turn is next,
which makes the continuation bit-identical under the same topology. Lane cursors are regrouped
under whatever (world size, workers) loads them (elastic resume).

End of data (finite ``epochs``): ranks run out at different steps. Every step the ranks agree
(one all-reduce of a flag over a gloo group) whether any still has data; one that has none yields
an all-padding batch (``sample_mask`` all 0) so no rank hangs and none drops or repeats data.

Shards: every rank streams one list. Under torch.distributed rank 0 lists ``source.urls`` and
broadcasts it (see :func:`agree_on_shards`); states keep its fingerprint (and the URLs of small
lists) so a resume on another list is refused naming the shards that differ.

State (JSON)::

    {"kind": "xtok_loader", "v": 3, "fingerprint": ..., "config": {...stream shape...},
     "shards": {"count", "fingerprint", "urls" (<= 256 shards, else null)},
     "topology": {"world_size", "num_workers"}, "step": 12,
     "lanes": {"0": {...lane cursor...}, ...},
     "ranks": {"0": {"next_worker": 1, "next_lane": {"0": 2, "1": 0}}, ...}}

``next_lane`` is, per worker, the position of the lane its mux asks next (v2 called it ``rr``).
Lane cursors are opaque here: the consumer's state is split and merged by ``pipeline.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .config import PipelineConfig
from .errors import ConfigError, SourceError, StateError, XtokError
from .io.urls import source_urls
from .lanes import consumer_index, consumer_lanes, num_consumers
from .pipeline import build_consumer, consumer_state, empty_batch, split_consumer_state
from .stages.mix import mix_shards
from .state import check_envelope, diff_fields, fingerprint, get_int, merge_metrics, nested
from .tokenizers import tokenizer_sha256

log = logging.getLogger(__name__)

KIND, VERSION = "xtok_loader", 3  # v2: deny-list config, tokenizers hashed by file bytes;
# v3: ranks.N.rr -> ranks.N.next_lane (mux v2)
_META = "_xtok"


def merge_states(parts: list[Mapping]) -> dict:
    """One state from every rank's local state (each rank holds only the lanes it owns)."""
    merged = dict(parts[0], lanes={}, ranks={})
    for p in parts:
        if p["fingerprint"] != merged["fingerprint"]:
            raise StateError(
                f"rank(s) {sorted(p['ranks'])} disagree with rank(s) {sorted(parts[0]['ranks'])} "
                "on the pipeline fingerprint; cannot merge states")
        merged["lanes"].update(p["lanes"])
        merged["ranks"].update(p["ranks"])
    merged["step"] = max(p["step"] for p in parts)
    return merged


SHARDS_IN_STATE = 256  # up to this many URLs are kept in states, to name what changed


def list_shards(config: PipelineConfig) -> list:
    """The shard URLs of ``source.urls`` (for a mixture: one list per source, stages/mix.py)."""
    if config.sources is not None:
        return mix_shards(config)
    return source_urls(config.source)


def _flat(shards: list) -> list[str]:
    """A mixture's per-source lists as one list of 'source#i: url' (plain lists unchanged)."""
    if shards and all(isinstance(s, list) for s in shards):
        return [f"source#{i}: {u}" for i, lst in enumerate(shards) for u in lst]
    return list(shards)


def shard_diff(saved: list[str], now: list[str], names=("the state", "now"), limit: int = 5
               ) -> str:
    """'only in now: [...]; only in the state: [...]' (or 'same shards in another order')."""
    saved, now = _flat(saved), _flat(now)
    new = [u for u in now if u not in set(saved)]
    gone = [u for u in saved if u not in set(now)]
    if not new and not gone:
        return "same shards in another order"
    parts = [f"{name}: {lst[:limit]}{' ...' if len(lst) > limit else ''}"
             for name, lst in ((f"only in {names[1]}", new), (f"only in {names[0]}", gone)) if lst]
    return "; ".join(parts)


def agree_on_shards(config: PipelineConfig, shards: list[str] | None, group) -> list[str]:
    """One shard list for every rank: rank 0 lists ``source.urls`` and broadcasts the result (a
    shard landing in the prefix between two ranks' listings would otherwise give ranks different
    lists: documents trained twice or never). Lists passed in explicitly are checked instead: a
    mismatch is refused, naming the shards that differ."""
    if shards is None:
        box: list[Any] = [None]
        if dist.get_rank() == 0:
            try:
                box[0] = list_shards(config)
            except XtokError as exc:  # every rank raises it, none waits for a list forever
                box[0] = exc
        dist.broadcast_object_list(box, src=0, group=group)
        if isinstance(box[0], BaseException):
            raise box[0]
        return list(box[0])
    shards = list(shards)
    prints: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(prints, fingerprint(shards), group=group)
    if len(set(prints)) > 1:
        lists: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(lists, shards, group=group)
        bad = [r for r, p in enumerate(prints) if p != prints[0]]
        raise SourceError(
            f"ranks disagree on the shard list: rank(s) {bad} vs rank 0 ("
            + shard_diff(lists[0], lists[bad[0]], ("rank 0", f"rank {bad[0]}"))
            + "); pass the same shards= to every rank, or none to let rank 0 list source.urls")
    return shards


class ConsumerDataset(IterableDataset):
    """What each DataLoader worker iterates: one consumer, restored from its cursor."""

    def __init__(self, config, shards, *, owned, worker_states, rotation):
        self.config, self.shards = config, shards
        self.owned = owned  # worker -> the lanes its consumer reads (computed once, by the loader)
        self.worker_states, self.rotation = worker_states, rotation

    def __iter__(self) -> Iterator[dict]:
        nw = self.config.num_workers
        info = get_worker_info()  # the one torch global read, at the process boundary
        w = ((info.id if info is not None else 0) + self.rotation) % max(1, nw)
        stream = build_consumer(self.config, self.shards, self.owned[w])
        if w in self.worker_states:
            try:
                stream.load_state_dict(self.worker_states[w])
            except StateError as exc:  # name the loader's path: lanes.3..., not source.lanes.3...
                raise StateError(str(exc).removeprefix("source.")) from exc
        try:
            try:
                for batch in stream:
                    batch[_META] = {"worker": w, "state": json.dumps(stream.state_dict()),
                                    "metrics": stream.metrics}
                    yield batch
            except XtokError as exc:
                if isinstance(exc, StateError):  # a lane cursor found bad at its first read
                    exc = StateError(str(exc).removeprefix("source."))
                if info is None:
                    raise exc
                # torch would rebuild it as type(message) and drop its fields: send it pickled
                yield {_META: {"worker": w, "error": exc}}
                return
            while True:  # see module docstring: keep the DataLoader's round-robin strict
                yield {_META: {"worker": w, "done": True}}
        finally:
            stream.close()


class Loader:
    """Iterable of batches for one rank, with exact ``state_dict``/``load_state_dict``.

    ``rank``/``world_size`` default to torch.distributed's when it is initialised.
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        shards: list[str] | None = None,
    ):
        self.config = config
        initialised = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if initialised else 0)
        self.world_size = (
            world_size if world_size is not None else (dist.get_world_size() if initialised else 1)
        )
        grouped = initialised and self.world_size > 1 and self.world_size == dist.get_world_size()
        # collectives on CPU objects need gloo, whatever the training backend is
        self._group = (None if not grouped or dist.get_backend() == "gloo"
                       else dist.new_group(backend="gloo"))
        self.shards = agree_on_shards(config, shards, self._group) if grouped else (
            shards if shards is not None else list_shards(config))
        nw = config.num_workers
        self._workers = max(1, nw)
        consumers = num_consumers(self.world_size, nw)
        # a mixture checks that every lane reads every source (stages/mix.py: check_lanes)
        usable = config.num_lanes if config.sources else min(len(self.shards), config.num_lanes)
        if consumers > usable:
            msg = (
                f"{consumers} consumers (world_size {self.world_size} x {self._workers} workers) "
                f"but only {usable} lanes have shards ({len(self.shards)} shards, num_lanes "
                f"{config.num_lanes}): some consumers get no data"
            )
            if config.epochs is None:
                raise ConfigError(msg + "; with epochs: null that rank would never yield")
            log.warning(msg)
        self._owned = {
            w: consumer_lanes(consumer_index(self.rank, w, nw), consumers, config.num_lanes)
            for w in range(self._workers)
        }
        self._sync = grouped and config.epochs is not None
        # tokenizers by their files' bytes, not only by name (a local folder can change under
        # its path), without loading them here: the workers do
        self._shape = dict(config.stream_shape(), tokenizer_sha256={
            spec: tokenizer_sha256(spec)
            for spec in [config.student.tokenizer, *(t.tokenizer for t in config.teachers)]
        })
        self._fingerprint = fingerprint({"config": self._shape, "shards": self.shards})
        self.reset()

    def reset(self) -> None:
        """Back to the start of the stream (fresh cursors)."""
        self._lanes: dict[str, Any] = {}
        self._next_lane: dict[int, int] = {}  # per worker: its mux's next lane position
        self._metrics: dict[int, dict] = {}  # per worker: its consumer's metrics
        self._next_worker = 0
        self._step = 0

    # -- iteration ---------------------------------------------------------------------------
    def _worker_states(self) -> dict[int, dict]:
        states = {}
        for w, lanes in self._owned.items():
            mine = {str(l): self._lanes[str(l)] for l in lanes if str(l) in self._lanes}
            if mine or w in self._next_lane:
                states[w] = consumer_state(mine, self._next_lane.get(w, 0))
        return states

    def _any_rank_has(self, has: bool) -> bool:
        if not self._sync:
            return has
        flag = torch.tensor([1 if has else 0], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        return bool(flag.item())

    def __iter__(self) -> Iterator[dict]:
        cfg = self.config
        dataset = ConsumerDataset(
            cfg, self.shards, owned=self._owned,
            worker_states=self._worker_states(), rotation=self._next_worker,
        )
        kwargs: dict[str, Any] = {"batch_size": None, "num_workers": cfg.num_workers,
                                  "pin_memory": cfg.pin_memory}
        if cfg.num_workers > 0:
            kwargs.update(prefetch_factor=cfg.prefetch_factor,
                          persistent_workers=cfg.persistent_workers)
        it = iter(DataLoader(dataset, **kwargs))
        done: set[int] = set()
        padding = None
        try:
            while True:
                real = None
                while real is None and len(done) < self._workers:
                    item = next(it)
                    meta = item.pop(_META)
                    if "error" in meta:  # a worker's library error, type and fields intact
                        raise meta["error"]
                    w = meta["worker"]
                    if w != self._next_worker:  # cannot happen unless torch changes its order
                        raise StateError(f"worker order broke: got {w}, expected {self._next_worker}")
                    self._next_worker = (w + 1) % self._workers
                    if meta.get("done"):
                        done.add(w)
                    else:
                        real = (item, w, meta)
                if not self._any_rank_has(real is not None):
                    return
                if real is None:
                    if padding is None:
                        padding = empty_batch(cfg)
                    batch = padding
                else:
                    batch, w, meta = real
                    self._metrics[w] = meta["metrics"]
                    self._next_lane[w], lanes = split_consumer_state(json.loads(meta["state"]))
                    self._lanes.update(lanes)
                self._step += 1
                yield batch
        finally:
            del it  # shuts the workers down

    # -- state --------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self._step

    @property
    def metrics(self) -> dict:
        """What this rank's workers' stages counted, as of the last batch handed out: retries
        and reopens of their readers in this iteration, the bad data skipped in this rank's
        lanes (kept in the lane cursors, so they survive a resume), the highest ``epoch`` their
        readers are in; for a mixture, ``sources``: per source the sequences, tokens and highest
        epoch of this rank's lanes."""
        return merge_metrics([{"retries": 0, "reopens": 0, "skipped": {}},
                              *self._metrics.values()])

    def batch_metrics(self, batch: Mapping) -> dict[str, float]:
        """A flat dict of this batch's alignment metrics and the loader's counters, for a
        trainer's logger (see ``xtok_stream.metrics``)."""
        from .metrics import batch_metrics

        return batch_metrics(batch, self)

    def state_dict(self) -> dict:
        """This rank's cursor after the last batch handed out (pure, cheap)."""
        owned = {str(l) for lanes in self._owned.values() for l in lanes}
        return {
            "kind": KIND, "v": VERSION,
            "fingerprint": self._fingerprint,
            "config": self._shape,
            "shards": {"count": len(self.shards), "fingerprint": fingerprint(self.shards),
                       "urls": self.shards if len(self.shards) <= SHARDS_IN_STATE else None},
            "topology": {"world_size": self.world_size, "num_workers": self.config.num_workers},
            "step": self._step,
            "lanes": {k: v for k, v in self._lanes.items() if k in owned},
            "ranks": {str(self.rank): {
                "next_worker": self._next_worker,
                "next_lane": {str(w): n for w, n in self._next_lane.items()},
            }},
        }

    def global_state_dict(self) -> dict:
        """All ranks' cursors merged (a collective: every rank must call it)."""
        local = self.state_dict()
        if not (self.world_size > 1 and dist.is_available() and dist.is_initialized()):
            return local
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, local)
        return merge_states(parts)

    def load_state_dict(self, state: Mapping) -> None:
        """Restore a (local or global) state; any topology may load it."""
        if isinstance(state, Mapping) and state.get("kind") == KIND and state.get("v") == 2:
            raise StateError(f"ranks.*.rr: '{KIND}' v2 state (per-worker field 'rr', renamed "
                             f"'next_lane' in v{VERSION}) is not supported; states written by "
                             "another version of xtok_stream cannot be resumed")
        check_envelope(state, KIND, VERSION, ("fingerprint", "config", "shards", "lanes", "ranks"))
        if state["fingerprint"] != self._fingerprint:
            diffs = diff_fields(state["config"], self._shape)
            if state["shards"]["fingerprint"] != fingerprint(self.shards):
                saved = state["shards"].get("urls")
                detail = shard_diff(saved, self.shards) if isinstance(saved, list) else (
                    "different URLs")
                diffs.append(f"shards: saved {state['shards']['count']} shards != now "
                             f"{len(self.shards)} ({detail})")
            raise StateError(
                "saved loader state belongs to another pipeline: " + "; ".join(diffs or ["?"])
            )
        lanes, ranks = state["lanes"], state["ranks"]
        if not isinstance(lanes, Mapping) or not all(
                isinstance(k, str) and k.isdigit() and int(k) < self.config.num_lanes
                and isinstance(v, Mapping) for k, v in lanes.items()):
            raise StateError(f"lanes: must map lane ids 0..{self.config.num_lanes - 1} (decimal "
                             "strings) to lane states; the lane states themselves are checked "
                             "by their stages when the workers start")
        if not isinstance(ranks, Mapping):
            raise StateError(f"ranks: must be a mapping, got {type(ranks).__name__}")
        step = get_int(state, "step", KIND)
        same = state.get("topology") == {
            "world_size": self.world_size, "num_workers": self.config.num_workers
        }
        mine = ranks.get(str(self.rank))
        next_worker, next_lane = 0, {}
        if same and mine is not None:
            with nested(f"ranks.{self.rank}"):
                if not isinstance(mine, Mapping) or not isinstance(mine.get("next_lane"), Mapping):
                    raise StateError("must be {next_worker: int, next_lane: {worker: int}}")
                next_worker = get_int(mine, "next_worker", KIND, hi=self._workers - 1)
                for w in mine["next_lane"]:
                    if not (isinstance(w, str) and w.isdigit() and int(w) < self._workers):
                        raise StateError(f"next_lane.{w}: not a worker of {self._workers}")
                    with nested("next_lane"):
                        next_lane[int(w)] = get_int(mine["next_lane"], w, KIND,
                                                    hi=max(0, len(self._owned[int(w)]) - 1))
        else:
            log.info("resuming under another topology: lanes regrouped, interleaving restarts")
        self.reset()
        self._lanes = dict(lanes)
        self._step = step
        self._next_worker, self._next_lane = next_worker, next_lane
