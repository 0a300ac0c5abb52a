"""Stage protocol, state envelopes and the config fingerprint.

Every stage's state is plain JSON::

    {"kind": "pack", "v": 1, ...own fields..., "source": {...upstream state...}}

It holds positions (shard slot, byte offset, token offset), never data, so it stays a few
hundred bytes per lane whatever the position in the epoch. A wrong kind, version or field raises
:class:`~xtok_stream.errors.StateError` naming the stage and the field (not ``assert``: that
vanishes under ``python -O``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from .errors import StateError

T = TypeVar("T", covariant=True)


class Stage(Protocol[T]):
    """What every stage implements. Construction does no I/O, so pipelines pickle cheaply."""

    def __iter__(self) -> Iterator[T]: ...

    def __next__(self) -> T: ...

    def state_dict(self) -> dict:
        """Cursor after the last item *returned*; pure and cheap (called every step)."""
        ...

    def load_state_dict(self, state: Mapping) -> None:
        """The next ``__next__`` yields the item after the one the state was taken at."""
        ...

    def close(self) -> None: ...


class StatefulMap:
    """State handling of a stage that holds nothing between items (1:1 maps, whole-batch
    collation): its cursor is its source's, in its own envelope. (It passes *state* through;
    its items are transformed.)"""

    KIND: str
    VERSION: int
    source: Any

    @classmethod
    def wrap(cls, source_state: Mapping) -> dict:
        """This stage's state around its source's."""
        return envelope(cls.KIND, cls.VERSION, source=dict(source_state))

    @classmethod
    def unwrap(cls, state: Mapping) -> Mapping:
        """The source's state inside this stage's (envelope checked)."""
        check_fields(state, cls.KIND, cls.VERSION, ("source",))
        return state["source"]

    def state_dict(self) -> dict:
        return self.wrap(self.source.state_dict())

    def load_state_dict(self, state: Mapping) -> None:
        source_state = self.unwrap(state)
        with nested("source"):
            self.source.load_state_dict(source_state)

    @property
    def metrics(self) -> dict:
        """The counts of the stages upstream (see ``LaneReader.metrics``)."""
        return self.source.metrics

    def close(self) -> None:
        self.source.close()


def merge_metrics(parts: Iterable[Mapping]) -> dict:
    """Merge metrics dicts key by key (nested dicts too): counters are summed, except an
    ``epoch``, which is a position: the highest wins."""
    out: dict = {}
    for p in parts:
        for k, v in p.items():
            if isinstance(v, Mapping):
                out[k] = merge_metrics([out.get(k, {}), v])
            elif k == "epoch":
                out[k] = max(out.get(k, v), v)
            else:
                out[k] = out.get(k, 0) + v
    return out


def envelope(kind: str, version: int, **fields: Any) -> dict:
    return {"kind": kind, "v": version, **fields}


def check_envelope(state: Mapping, kind: str, version: int, fields: tuple[str, ...]) -> None:
    """Raise StateError unless ``state`` is a ``kind`` v``version`` state with ``fields``; the
    message starts with the field it is about (``v: ...``), see :mod:`xtok_stream.cursor`."""
    if not isinstance(state, Mapping):
        raise StateError(f"{kind} state must be a mapping, got {type(state).__name__}")
    if state.get("kind") != kind:
        raise StateError(f"kind: expected a '{kind}' state, got kind={state.get('kind')!r}")
    if state.get("v") != version:
        raise StateError(f"v: '{kind}' state version {state.get('v')!r} is not supported "
                         f"(want {version}; states written by another version of xtok_stream "
                         "cannot be resumed)")
    missing = [f for f in fields if f not in state]
    if missing:
        raise StateError(f"{missing[0]}: missing from the '{kind}' state (lacks field(s) "
                         f"{', '.join(missing)})")


def within(prefix: str, exc: StateError) -> StateError:
    """``exc`` with ``prefix`` put in front of the path its message starts with."""
    msg = str(exc)
    head, sep, rest = msg.partition(": ")
    if sep and head and " " not in head:
        return StateError(f"{prefix}.{head}: {rest}")
    return StateError(f"{prefix}: {msg}")


@contextlib.contextmanager
def nested(prefix: str) -> Iterator[None]:
    """Re-raise a StateError from a part of the state under ``prefix`` (``source``,
    ``lanes.3``)."""
    try:
        yield
    except StateError as exc:
        raise within(prefix, exc) from exc


def get_int(state: Mapping, name: str, kind: str, *, lo: int = 0, hi: int | None = None,
            hint: str = "") -> int:
    """``state[name]`` as an int in ``[lo, hi]`` (JSON integers only: not bool, float, str)."""
    v = state[name]
    if type(v) is not int:
        raise StateError(f"{name}: must be an integer in the '{kind}' state, got "
                         f"{type(v).__name__} {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise StateError(f"{name}: {v} is out of range in the '{kind}' state (must be {rng}"
                         f"{'; ' + hint if hint else ''})")
    return v


def check_fields(state: Any, kind: str, version: int, fields: tuple[str, ...]) -> None:
    """The envelope check plus: no field this version does not write (a state from another
    version or an edit)."""
    check_envelope(state, kind, version, fields)
    extra = sorted(set(state) - {"kind", "v", *fields})
    if extra:
        raise StateError(f"{extra[0]}: unknown field in the '{kind}' v{version} state "
                         f"(fields: {', '.join(fields)})")


def fingerprint(obj: Any) -> str:
    """Stable hash of a JSON-able object (sorted keys), for configs and shard lists."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def diff_fields(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    """Dotted paths where two nested mappings differ (for 'which field differs' messages)."""
    out: list[str] = []
    for k in sorted(set(a) | set(b), key=str):
        path = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.extend(diff_fields(va, vb, path + "."))
        elif va != vb:
            out.append(f"{path}: saved {va!r} != now {vb!r}")
    return out
