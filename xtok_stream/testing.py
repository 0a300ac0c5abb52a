"""Test helpers for stages, public so users can check their own stages the same way.

``check_resume(make_stage)`` runs a stage to the end, then restores a fresh copy from the state
saved before *every* item (including the initial state and states across epoch ends) and checks
that the continuation equals the rest of the original run; it also checks that states survive a
JSON round trip, keep the same top-level keys at every step, and stay under a size bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from .records import Document, PackedSequence


def item_key(item: Any) -> Any:
    """A comparable fingerprint of what a stage yields."""
    if isinstance(item, PackedSequence):
        return (item.input_ids.tobytes(), item.length, json.dumps(item.ledger()), tuple(item.texts))
    if isinstance(item, Document):
        return (item.key, item.text, item.shard, item.offset)
    if isinstance(item, dict):
        out = []
        for k in sorted(item):
            v = item[k]
            if hasattr(v, "numpy"):
                v = v.numpy().tobytes()
            elif isinstance(v, np.ndarray):
                v = v.tobytes()
            else:
                v = json.dumps(v, sort_keys=True, default=str)
            out.append((k, v))
        return tuple(out)
    return item


def check_resume(
    make_stage: Callable[[], Any],
    *,
    max_state_bytes: int = 64 * 1024,
    every: int = 1,
) -> list[Any]:
    """Restore at every ``every``-th step and compare; returns the items of the full run."""
    ref = make_stage()
    states = [ref.state_dict()]
    items = []
    for item in ref:
        items.append(item_key(item))
        states.append(ref.state_dict())
    ref.close()
    keys = set(states[0])
    for i in range(0, len(states), every):
        state = states[i]
        blob = json.dumps(state)
        if json.loads(blob) != state:
            raise AssertionError(f"state at step {i} does not survive a JSON round trip")
        if len(blob) > max_state_bytes:
            raise AssertionError(f"state at step {i} is {len(blob)} bytes > {max_state_bytes}")
        if set(state) != keys:
            raise AssertionError(f"state keys changed at step {i}: {sorted(state)} != {sorted(keys)}")
        stage = make_stage()
        stage.load_state_dict(json.loads(blob))
        rest = [item_key(x) for x in stage]
        stage.close()
        if rest != items[i:]:
            first = next((j for j, (a, b) in enumerate(zip(rest, items[i:])) if a != b),
                         min(len(rest), len(items) - i))
            raise AssertionError(
                f"resume from step {i} diverges at item {i + first} "
                f"(got {len(rest)} items, expected {len(items) - i})"
            )
    return items
