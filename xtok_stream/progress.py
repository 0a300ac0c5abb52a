"""Progress of a stream of batches: a bar on a terminal, plain lines otherwise.

The unit is *shard bytes read* when the total is knowable (tar shards, finite ``epochs``): the
total is the size of every shard this rank's lanes read, over all epochs (from ``manifest.json``
beside the shards when it lists them, else one size query per shard), and the position is read
off the loader's state after each batch (lane cursor = epoch, slot, byte offset; the lane's shard
order is a pure function, ``lanes.lane_shards``), so it is what was *consumed*, never what
workers read ahead. Otherwise (``--max-batches``, ``epochs: null``, Arrow) it counts batches.
Each update also shows student tokens/s and every teacher's running (chunk-weighted) exact share.
"""

from __future__ import annotations

import json
import posixpath
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import fsspec

from .lanes import lane_shards


def shard_sizes(shards: list[str], storage_options: Mapping[str, Any] | None = None) -> list[int]:
    """Byte size of every shard: ``manifest.json`` in their folder if it names them all, else
    the store's size of each file."""
    opts = dict(storage_options or {})
    folder = posixpath.dirname(shards[0]) if shards else ""
    if shards and all(posixpath.dirname(s) == folder for s in shards):
        try:
            with fsspec.open(f"{folder}/manifest.json", "rb", **opts) as f:
                listed = {s["name"]: int(s["bytes"]) for s in json.load(f)["shards"]}
            if all(posixpath.basename(s) in listed for s in shards):
                return [listed[posixpath.basename(s)] for s in shards]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no usable manifest: ask the store
    fs, _ = fsspec.core.url_to_fs(shards[0], **opts) if shards else (None, None)
    return [int(fs.size(s)) for s in shards]


def _reader_cursor(lane: Any) -> Mapping | None:
    node = lane
    while isinstance(node, Mapping) and not {"epoch", "slot", "offset"} <= node.keys():
        node = node.get("source")
    return node if isinstance(node, Mapping) else None


class ByteCounter:
    """Shard bytes this rank's lanes read in total, and consumed so far at a loader state."""

    def __init__(self, loader: Any, sizes: list[int]):
        cfg = loader.config
        self.sizes, self.epochs = sizes, int(cfg.epochs)
        self.plan = lambda lane, epoch: lane_shards(len(sizes), cfg.num_lanes, lane, cfg.seed,
                                                    epoch, cfg.shuffle.shards)
        self.lanes = sorted({lane for lanes in loader._owned.values() for lane in lanes})
        self.total = sum(self._epoch_bytes(lane, e) for lane in self.lanes
                         for e in range(self.epochs))

    def _epoch_bytes(self, lane: int, epoch: int, slots: int | None = None) -> int:
        return sum(self.sizes[i] for i in self.plan(lane, epoch)[:slots])

    def done(self, state: Mapping) -> int:
        out = 0
        for key, lane in state.get("lanes", {}).items():
            c = _reader_cursor(lane)
            if c is None or int(key) not in self.lanes:
                continue
            epoch, slot = min(int(c["epoch"]), self.epochs), int(c["slot"])
            out += sum(self._epoch_bytes(int(key), e) for e in range(epoch))
            if epoch < self.epochs:
                out += self._epoch_bytes(int(key), epoch, slot) + int(c["offset"])
        return min(out, self.total)


class StreamProgress:
    """``update(batch)`` after every batch; ``close()`` at the end. A tqdm bar when ``file`` is
    a terminal, else one plain line every ``interval`` seconds (and a last one)."""

    def __init__(self, loader: Any, *, max_batches: int | None = None, file: TextIO | None = None,
                 interval: float = 10.0):
        self.loader, self.file = loader, file or sys.stdout
        self.interval, self.max_batches = interval, max_batches
        cfg = loader.config
        self.bytes: ByteCounter | None = None
        if max_batches is None and cfg.epochs is not None and cfg.source.format == "tar":
            self.bytes = ByteCounter(loader, shard_sizes(loader.shards, cfg.source.storage_options))
        self.total = self.bytes.total if self.bytes else max_batches
        self.batches = self.tokens = 0
        # a resumed loader starts part-way: count the rate from there
        self.n = self.start = self.bytes.done(loader.state_dict()) if self.bytes else 0
        self._closed = False
        self.chunks: dict[str, list[float]] = {}
        self.t0 = self._last = time.perf_counter()
        self.bar = None
        if self.file.isatty():
            from tqdm import tqdm

            unit = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if self.bytes else {
                "unit": "batch"}
            self.bar = tqdm(total=self.total, initial=self.n, dynamic_ncols=True, file=self.file,
                            **unit)

    def stats(self) -> dict[str, Any]:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        out = {"done": self.n, "total": self.total, "batches": self.batches,
               "tokens_per_s": self.tokens / dt,
               "exact_share": {k: e / max(c, 1) for k, (c, e) in self.chunks.items()}}
        if self.total and self.n > self.start:
            out["eta_s"] = dt * (self.total - self.n) / (self.n - self.start)
        return out

    def update(self, batch: Mapping) -> None:
        self.batches += 1
        self.tokens += int(batch["input_lengths"].sum())
        for name, t in batch.get("teachers", {}).items():
            acc = self.chunks.setdefault(name, [0.0, 0.0])
            acc[0] += t["metrics"]["chunks"]
            acc[1] += t["metrics"]["exact_share"] * t["metrics"]["chunks"]
        n = self.bytes.done(self.loader.state_dict()) if self.bytes else self.batches
        if self.bar is not None:
            self.bar.update(max(0, n - self.n))
            self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.n = max(self.n, n)
        if self.bar is None and time.perf_counter() - self._last >= self.interval:
            self._line()

    def _postfix(self) -> str:
        s = self.stats()
        parts = [f"{s['tokens_per_s']:,.0f} tok/s"]
        parts += [f"{k} exact {v:.1%}" for k, v in s["exact_share"].items()]
        return ", ".join(parts)

    def _line(self) -> None:
        self._last = time.perf_counter()
        s = self.stats()
        if self.bytes:
            pos = f"{self.n / 1e6:,.1f}/{self.total / 1e6:,.1f} MB ({self.n / max(self.total, 1):.0%})"
        else:
            pos = f"{self.batches}" + (f"/{self.total}" if self.total else "") + " batches"
        eta = f", ETA {s['eta_s']:.0f}s" if "eta_s" in s else ""
        print(f"progress: {pos}, {self.batches} batches{eta}, {self._postfix()}", file=self.file,
              flush=True)

    def close(self, finished: bool = False) -> None:
        """``finished``: the stream ended by itself (all data read: the position is the total).
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        if finished and self.total:
            if self.bar is not None:
                self.bar.update(max(0, self.total - self.n))
            self.n = self.total
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        else:
            self._line()


def bar(**kwargs: Any):
    """A tqdm bar on a terminal; elsewhere (logs, CI) the same bar as plain lines, at most one
    every 10 s plus the first and the last (tqdm's ``\\r`` redraws make unreadable logs)."""
    from tqdm import tqdm

    file = kwargs.get("file") or sys.stderr
    if file.isatty():
        return tqdm(**kwargs)
    kwargs.setdefault("mininterval", 10.0)
    kwargs.pop("dynamic_ncols", None)
    return _plain_tqdm()(**kwargs)


def _plain_tqdm():
    from tqdm import tqdm

    class PlainTqdm(tqdm):
        def display(self, msg=None, pos=None):  # one line per refresh instead of a redraw
            print(self.__str__() if msg is None else msg, file=self.fp, flush=True)
            return True

    return PlainTqdm

