"""``mux``: round-robin over the lanes one consumer (a (rank, worker) pair) owns.

Lanes are pulled lazily, one sequence at a time, so every lane's cursor is exactly "after its
last sequence handed out". Cursor: ``{"rr": next lane position, "lanes": {lane: lane cursor}}``.
A lane missing from ``lanes`` starts from the beginning; that is what makes the state elastic:
the loader can regroup lane cursors under any other consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import StateError
from ..state import check_fields, envelope, get_int, merge_metrics, nested, within


class LaneMux:
    KIND, VERSION = "mux", 1

    def __init__(self, lanes: Mapping[int, Any]):
        self.ids = list(lanes)
        self.lanes = dict(lanes)
        self._rr = 0
        self._done: set[int] = set()

    def __iter__(self) -> LaneMux:
        return self

    def __next__(self):
        n = len(self.ids)
        for i in range(n):
            pos = (self._rr + i) % n
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
            self._rr = (pos + 1) % n
            return item
        raise StopIteration

    def state_dict(self) -> dict:
        return envelope(
            self.KIND, self.VERSION, rr=self._rr,
            lanes={str(k): s.state_dict() for k, s in self.lanes.items()},
        )

    def load_state_dict(self, state: Mapping) -> None:
        check_fields(state, self.KIND, self.VERSION, ("rr", "lanes"))
        self._rr = get_int(state, "rr", self.KIND, hi=max(0, len(self.ids) - 1),
                           hint=f"this consumer muxes {len(self.ids)} lane(s)")
        lanes = state["lanes"]
        if not isinstance(lanes, Mapping):
            raise StateError(f"lanes: must map lane ids to lane states, got {type(lanes).__name__}")
        self._done = set()
        for key, lane_state in lanes.items():
            if not (isinstance(key, str) and key.isdigit()):
                raise StateError(f"lanes.{key}: lane ids are decimal strings")
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
