"""``mix``: several sources blended by weight inside each lane (``sources:`` in the pipeline).

Sequence-level mixing: every source runs its own ``read -> [shuffle] -> pack -> teachers`` (or
its precomputed reader) inside the lane, and the mixer picks which source gives the lane's next
*packed sequence*. Why not documents: a precomputed source only has packed sequences; a weight
then means a share of *tokens* (every sequence holds ``seq_len``), not of documents whose lengths
differ 100x between corpora; every row has exactly one source (``source_ids``), so a per-source
loss needs no per-token bookkeeping; and each source's packer cursor stays its own, so resume,
exactly-once and elastic regrouping hold per source with the existing stages unchanged.

The blend is error-minimising, as Megatron's BlendedDataset means it, with a tighter rule: with
normalised weights ``w`` over the sources still running and ``c`` the sequences each gave in the
current *segment* (``n`` in all), :func:`choose` picks the next source by Tijdeman's chairman
assignment, ties broken by a priority order drawn from ``(seed, lane)``. Exact arithmetic
(fractions), so it is a pure function of (seed, lane, weights, position), and at every prefix
``|c_i - w_i n| < 1`` for any number of sources. Mixing happens per lane, so it does not
depend on world size or worker count::

    weights 0.5 / 0.3 / 0.2      lane output:  a b a c a b a b c a | a b ...
    after 10: a 5, b 3, c 2      (each within one sequence of weight x position at every prefix)

A *segment* restarts (counts to 0) when the set of running sources changes (a ``stop`` source
ended) or the weights changed at resume, so the new proportions hold exactly from that point.

Cursor: ``{"weights", "counts", "done", "ended", "sequences", "tokens", "sources": {name:
source lane cursor}}``; per-source epochs live in each source's reader cursor.

Changing weights at resume is allowed (well-defined: every source's cursor is unchanged, so
exactly-once per source still holds; the blend starts a new segment at the new weights). Adding,
removing, renaming or reordering sources, or changing a source's urls/format/end policy, changes
the loader fingerprint and the resume is refused naming ``sources.<name>.<field>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from ..config import PipelineConfig, SourceConfig
from ..errors import ConfigError, StateError
from ..io.urls import lane_urls, source_urls
from ..lanes import splitmix64
from ..records import PackedSequence
from ..state import check_envelope, envelope, merge_metrics

log = logging.getLogger(__name__)


def choose(weights: Sequence[Fraction], counts: Sequence[int], active: Sequence[int],
           priority: Sequence[int]) -> int:
    """The next source among ``active`` (indices), weights renormalised over ``active``.

    Tijdeman's chairman assignment (1980): among the sources not ahead by more than
    ``1 - d`` (``w_i n - c_i >= d``, ``d = 1 / (2(k - 1))``), take the earliest deadline
    ``(c_i + 1 - d) / w_i``; ties go to the earlier source in ``priority``. It keeps
    ``|c_i - w_i n| <= 1 - d < 1`` at every prefix for any k; Megatron's largest deficit
    ``argmax w_i (n + 1) - c_i`` does not (weights 1,1,1,12,12 reach 1.0 at n = 18).
    """
    active = list(active)
    k = len(active)
    if k == 1:
        return active[0]
    total = sum(weights[i] for i in active)
    n = sum(counts[i] for i in active) + 1
    d = Fraction(1, 2 * (k - 1))
    rank = {s: r for r, s in enumerate(priority)}
    eligible = [i for i in active if weights[i] * n - counts[i] * total >= d * total] or active
    return min(eligible, key=lambda i: ((counts[i] + 1 - d) * total / weights[i], rank[i]))


def priority_order(seed: int, lane: int, k: int) -> list[int]:
    """A (seed, lane)-drawn order of the k sources, for ties (so no source always goes first)."""
    return sorted(range(k), key=lambda i: splitmix64(splitmix64(splitmix64(seed) ^ lane) ^ i))


class Mixer:
    """Blends the sequences of one lane's sources. Construction does no I/O."""

    KIND, VERSION = "mix", 1

    def __init__(self, sources: Mapping[str, Any], *, weights: Sequence[float], repeat: Sequence[bool],
                 end: str = "all_exhausted", target: str | None = None, seed: int = 0,
                 lane: int = 0):
        self.names = list(sources)
        self.sources = [sources[n] for n in self.names]
        self.weights = [float(w) for w in weights]
        self._exact = [Fraction(w) for w in self.weights]
        self.repeat, self.end, self.target = list(repeat), end, target
        self.priority = priority_order(seed, lane, len(self.names))
        k = len(self.names)
        self._counts, self._done = [0] * k, [False] * k
        self._sequences, self._tokens = [0] * k, [0] * k
        self._ended = False

    def __iter__(self) -> Mixer:
        return self

    def _finished(self, i: int) -> bool:
        """Source ``i`` just ran out: does the mixture end?"""
        if self.end == "first_exhausted":
            return True
        if self.end == "epochs":
            return self.names[i] == self.target
        # all_exhausted: every stop source has ended (a repeat source ends only if it is empty)
        stops = [j for j, r in enumerate(self.repeat) if not r]
        return all(self._done[j] for j in stops) if stops else all(self._done)

    def __next__(self) -> PackedSequence:
        while not self._ended:
            active = [i for i, d in enumerate(self._done) if not d]
            if not active:
                break
            i = choose(self._exact, self._counts, active, self.priority)
            try:
                seq = next(self.sources[i])
            except StopIteration:
                self._done[i] = True
                self._counts = [0] * len(self._counts)  # new segment over the sources left
                self._ended = self._finished(i)
                continue
            self._counts[i] += 1
            self._sequences[i] += 1
            self._tokens[i] += seq.length
            seq.source = i
            return seq
        self._ended = True
        raise StopIteration

    def state_dict(self) -> dict:
        return envelope(
            self.KIND, self.VERSION, weights=list(self.weights), counts=list(self._counts),
            done=list(self._done), ended=self._ended, sequences=list(self._sequences),
            tokens=list(self._tokens),
            sources={n: s.state_dict() for n, s in zip(self.names, self.sources)},
        )

    def load_state_dict(self, state: Mapping) -> None:
        check_envelope(state, self.KIND, self.VERSION,
                       ("weights", "counts", "done", "ended", "sequences", "tokens", "sources"))
        if list(state["sources"]) != self.names:
            raise StateError(f"mix state has sources {list(state['sources'])}, the pipeline "
                             f"{self.names} (sources: may not be added, removed or reordered)")
        for name, src in zip(self.names, self.sources):
            try:
                src.load_state_dict(state["sources"][name])
            except StateError as exc:
                raise StateError(f"sources.{name}: {exc}") from exc
        k = len(self.names)
        self._done = [bool(d) for d in state["done"]]
        self._ended = bool(state["ended"])
        self._sequences = [int(x) for x in state["sequences"]]
        self._tokens = [int(x) for x in state["tokens"]]
        if [float(w) for w in state["weights"]] == self.weights:
            self._counts = [int(x) for x in state["counts"]]
        else:  # see the module docstring: the new weights hold from here
            log.info("sources' weights changed at resume (%s -> %s): new blend segment",
                     state["weights"], self.weights)
            self._counts = [0] * k

    @property
    def metrics(self) -> dict:
        """The sources' counts, summed (each source's reader counts its own), and ``sources``:
        per source the sequences and tokens this lane handed out (kept in its cursor, so they
        count from the start of the run across resumes) and the epoch its reader is in
        (:func:`~xtok_stream.state.merge_metrics` keeps the highest of a rank's lanes)."""
        parts = [s.metrics for s in self.sources]
        out = merge_metrics(parts)
        out["sources"] = {
            n: {"sequences": self._sequences[i], "tokens": self._tokens[i],
                "epoch": parts[i].get("epoch", 0)}
            for i, n in enumerate(self.names)}
        return out

    def close(self) -> None:
        for s in self.sources:
            s.close()


# -- wiring ------------------------------------------------------------------------------------
def source_pipeline(config: PipelineConfig, i: int) -> PipelineConfig:
    """The one-source pipeline that source ``i`` of a mixture runs inside each lane: ``repeat``
    streams epochs forever, ``stop`` reads ``epochs`` passes, the source named by
    ``mixture.end: epochs`` reads ``mixture.epochs``."""
    src = config.sources[i]
    name = config.source_names[i]
    if config.mixture.end == "epochs" and name == config.mixture.source:
        epochs = config.mixture.epochs
    else:
        epochs = None if src.end == "repeat" else config.epochs
    one = SourceConfig(**src.model_dump(include=set(SourceConfig.model_fields)))
    return config.model_copy(update={"source": one, "sources": None, "epochs": epochs})


def check_lanes(config: PipelineConfig, shards: Sequence[Sequence[str]],
                lanes: Sequence[int]) -> None:
    """Every lane must read every source, or that lane's blend would silently drift."""
    for i, (src, urls) in enumerate(zip(config.sources, shards)):
        for lane in lanes:
            empty = (not lane_urls(urls, lane)) if src.format == "precomputed" else len(urls) <= lane
            if empty:
                raise ConfigError(
                    f"sources[{i}] ({config.source_names[i]}): lane {lane} gets no shard of it "
                    f"({len(urls)} shards, num_lanes {config.num_lanes}), so that lane's blend "
                    "would drift from the weights; use num_lanes <= the shards of every source "
                    "or split the source into more shards")


def mix_shards(config: PipelineConfig) -> list[list[str]]:
    """Each source's shard list (URL expansion, as for one source), checked for every lane."""
    out = [source_urls(s) for s in config.sources]
    check_lanes(config, out, range(config.num_lanes))
    return out


def build_mixed_lane(config: PipelineConfig, shards: Sequence[Sequence[str]], lane: int,
                     build: Callable[[PipelineConfig, list[str], int], Any]) -> Mixer:
    """What ``pipeline.build_lane`` returns for ``sources:``; ``build`` builds one source's lane."""
    if len(shards) != len(config.sources):
        raise ConfigError(f"a mixture of {len(config.sources)} sources needs one shard list per "
                          f"source, got {len(shards)}")
    check_lanes(config, shards, [lane])
    names = config.source_names
    return Mixer(
        {n: build(source_pipeline(config, i), list(shards[i]), lane) for i, n in enumerate(names)},
        weights=[s.weight for s in config.sources], repeat=[s.end == "repeat" for s in config.sources],
        end=config.mixture.end, target=config.mixture.source, seed=config.seed, lane=lane,
    )

