"""Typed cursors: the one place a saved JSON cursor is turned into checked values.

A state may come from a file someone edited, truncated or wrote with another version. Every
value is checked (exact JSON type, range, rules between fields) before a stage uses it, and a bad
one raises :class:`~xtok_stream.errors.StateError` whose message starts with the field's dotted
path inside the state, e.g. ``part: ...``; enclosing stages prefix their own path
(:func:`nested`), so a loader reports ``lanes.3.source.source.part: ...``. A bad cursor is never
answered with a silent repeat or drop.

:class:`ShardCursor` is the position shared by the three readers (tar, Arrow, precomputed):
``epoch``, ``slot`` (the lane's ``slot``-th shard of that epoch) and ``offset`` (tar: byte of
the next sample's first header; Arrow: row). :class:`DocumentCursor` adds the window of a huge
document read in parts and the bad-data counts; :class:`SequenceCursor` the index of the next
precomputed sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import StateError
from .state import check_fields, get_int, nested

SKIP_KINDS = ("corrupt_shard", "missing_field", "invalid_utf8", "empty_document", "huge_document",
              "odd_member")


@dataclass(frozen=True, slots=True)
class ShardCursor:
    """Where a reader's next item is (see the module docstring)."""

    epoch: int = 0
    slot: int = 0
    offset: int = 0

    def to_dict(self, kind: str, version: int) -> dict:
        return {"kind": kind, "v": version, **{f.name: _plain(getattr(self, f.name))
                                               for f in dataclasses.fields(self)}}

    @classmethod
    def from_dict(cls, state: Any, kind: str, version: int, *, epochs: int | None,
                  slots: Callable[[int], int], offset_align: int = 1):
        """Check every field; ``slots(epoch)`` is how many shards the lane reads in that epoch
        (``slot == slots(epoch)`` means "that epoch's shards are done")."""
        names = tuple(f.name for f in dataclasses.fields(cls))
        check_fields(state, kind, version, names)
        epoch = get_int(state, "epoch", kind, hi=epochs,
                        hint="past the configured epochs" if epochs is not None else "")
        slot = get_int(state, "slot", kind, hi=slots(epoch),
                       hint=f"the lane reads {slots(epoch)} shard(s) in epoch {epoch}")
        offset = get_int(state, "offset", kind)
        if offset % offset_align:
            raise StateError(f"offset: {offset} is not a multiple of {offset_align} in the "
                             f"'{kind}' state (a tar header starts on a {offset_align}-byte block)")
        values = {"epoch": epoch, "slot": slot, "offset": offset}
        values.update(cls._more(state, kind))
        return cls(**values)

    @classmethod
    def _more(cls, state: Mapping, kind: str) -> dict:
        return {}


def _plain(v: Any) -> Any:
    return dict(v) if isinstance(v, Mapping) else v


@dataclass(frozen=True, slots=True)
class DocumentCursor(ShardCursor):
    """A document reader's cursor: ``part`` > 0 is the byte (``part_chars`` the character) where
    the next window of a huge document starts (``on_bad_data.huge_document: split``);
    ``skipped`` counts bad data dropped under ``skip`` policies."""

    part: int = 0
    part_chars: int = 0
    skipped: dict = field(default_factory=lambda: dict.fromkeys(SKIP_KINDS, 0))

    @classmethod
    def _more(cls, state: Mapping, kind: str) -> dict:
        part, chars = get_int(state, "part", kind), get_int(state, "part_chars", kind)
        if (part == 0) != (chars == 0):
            raise StateError(f"part_chars: {chars} with part {part} in the '{kind}' state (both "
                             "are 0 or both > 0: the byte and character where a window starts)")
        if chars > part:
            raise StateError(f"part_chars: {chars} characters cannot start after byte {part} "
                             f"in the '{kind}' state")
        skipped = state["skipped"]
        if not isinstance(skipped, Mapping) or set(skipped) != set(SKIP_KINDS):
            raise StateError(f"skipped: must map exactly {', '.join(SKIP_KINDS)} to counts in "
                             f"the '{kind}' state, got {skipped!r}")
        counts = {}
        with nested("skipped"):
            for k in SKIP_KINDS:
                counts[k] = get_int(skipped, k, kind)
        return {"part": part, "part_chars": chars, "skipped": counts}


@dataclass(frozen=True, slots=True)
class SequenceCursor(ShardCursor):
    """A precomputed reader's cursor: ``index`` = the next sequence's index in the lane;
    ``skipped`` counts the odd members dropped under ``on_bad_data.odd_member: skip``."""

    index: int = 0
    skipped: dict = field(default_factory=lambda: {"odd_member": 0})

    @classmethod
    def _more(cls, state: Mapping, kind: str) -> dict:
        skipped = state["skipped"]
        if not isinstance(skipped, Mapping) or set(skipped) != {"odd_member"}:
            raise StateError(f"skipped: must map exactly odd_member to a count in the '{kind}' "
                             f"state, got {skipped!r}")
        with nested("skipped"):
            n = get_int(skipped, "odd_member", kind)
        return {"index": get_int(state, "index", kind), "skipped": {"odd_member": n}}
