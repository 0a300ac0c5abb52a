"""``mux``: round-robin over the lanes one consumer (a (rank, worker) pair) owns.

Lanes are pulled lazily, one sequence at a time, so every lane's cursor is exactly "after its
last sequence handed out". Cursor (v2)::

    {"kind": "mux", "v": 2, "next_lane": 1, "lanes": {"0": {...lane cursor...}, "4": {...}}}

``next_lane`` is the position (in this consumer's lane list) of the lane asked first for the next
item (v1 called it ``rr``; a v1 state is refused naming it). A lane missing from ``lanes`` starts
from the beginning; that is what makes the state elastic: the loader regroups lane cursors under
any other consumer through :meth:`LaneMux.split_state` / :meth:`LaneMux.merge_state`, without
knowing this envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import StateError
from ..state import check_fields, envelope, get_int, merge_metrics, nested, within


class LaneMux:
    KIND, VERSION = "mux", 2  # v2: rr -> next_lane

    def __init__(self, lanes: Mapping[int, Any]):
        self.ids = list(lanes)
        self.lanes = dict(lanes)
        self._next = 0
        self._done: set[int] = set()

    def __iter__(self) -> LaneMux:
        return self

    def __next__(self):
        n = len(self.ids)
        for i in range(n):
            pos = (self._next + i) % n
            lane = self.ids[pos]
            if lane in self._done:
                continue
            try:
                item = next(self.lanes[lane])
            except StopIteration:
                self._done.add(lane)
                continue
            except StateError as exc:  # a restored cursor found bad at its first read
                raise within(f"lanes.{lane}", exc) from exc
            self._next = (pos + 1) % n
            return item
        raise StopIteration

    def state_dict(self) -> dict:
        return self.merge_state({str(k): s.state_dict() for k, s in self.lanes.items()},
                                self._next)

    @classmethod
    def merge_state(cls, lanes: Mapping[str, Mapping], next_lane: int = 0) -> dict:
        """A mux state from per-lane cursors (keys: decimal lane ids) and the next position."""
        return envelope(cls.KIND, cls.VERSION, next_lane=next_lane, lanes=dict(lanes))

    @classmethod
    def split_state(cls, state: Mapping) -> tuple[int, dict[str, Mapping]]:
        """``(next_lane, {lane id: lane cursor})`` of a mux state; the envelope is checked, the
        lane cursors are not (their stages check them when restored)."""
        if isinstance(state, Mapping) and state.get("kind") == cls.KIND and state.get("v") == 1:
            raise StateError(f"rr: 'mux' v1 state (field 'rr', renamed 'next_lane' in "
                             f"v{cls.VERSION}) is not supported; states written by another "
                             "version of xtok_stream cannot be resumed")
        check_fields(state, cls.KIND, cls.VERSION, ("next_lane", "lanes"))
        lanes = state["lanes"]
        if not isinstance(lanes, Mapping):
            raise StateError(f"lanes: must map lane ids to lane states, got {type(lanes).__name__}")
        for key in lanes:
            if not (isinstance(key, str) and key.isdigit()):
                raise StateError(f"lanes.{key}: lane ids are decimal strings")
        return get_int(state, "next_lane", cls.KIND), dict(lanes)

    def load_state_dict(self, state: Mapping) -> None:
        next_lane, lanes = self.split_state(state)
        self._next = get_int({"next_lane": next_lane}, "next_lane", self.KIND,
                             hi=max(0, len(self.ids) - 1),
                             hint=f"this consumer muxes {len(self.ids)} lane(s)")
        self._done = set()
        for key, lane_state in lanes.items():
            lane = int(key)
            if lane not in self.lanes:
                continue  # regrouped: another consumer owns it now
            with nested(f"lanes.{lane}"):
                self.lanes[lane].load_state_dict(lane_state)

    @property
    def metrics(self) -> dict:
        """The lanes' counts, summed (each lane's reader counts its own)."""
        return merge_metrics(s.metrics for s in self.lanes.values())

    def close(self) -> None:
        for s in self.lanes.values():
            s.close()
