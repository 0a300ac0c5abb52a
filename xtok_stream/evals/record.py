"""The record every eval loader returns, and the field checks that name file, line and field.

An :class:`EvalRecord` is plain data: a stable ``task_id``, the exact ``prompt`` text the model
sees, what scoring needs (``answer`` letter for MMLU; ``entry_point`` and ``test`` code for
HumanEval+/MBPP+), and ``metadata`` (source URL and line/row, the solution, EvalPlus inputs...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DecodeError


@dataclass(frozen=True)
class EvalRecord:
    task_id: str  # stable across runs: "HumanEval/0", "Mbpp/2", "mmlu/abstract_algebra/0"
    benchmark: str  # "humaneval_plus" | "mbpp_plus" | "mmlu"
    prompt: str  # exactly what the model is given (see the loaders' docstrings for formats)
    answer: str | None = None  # MMLU: the correct letter "A".."D"
    entry_point: str | None = None  # code: the function the tests call
    test: str | None = None  # code: test code to run after the completion
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def where(url: str, location: str) -> str:
    """``location`` is "line N" (JSONL/CSV, 1-based) or "row N" (Parquet, 0-based)."""
    return f"{url}: {location}"


def require(row: dict, name: str, url: str, location: str, types: type | tuple = str,
            hint: str = "") -> Any:
    """``row[name]``, checked for presence, non-null and type; else a DecodeError naming all three."""
    if name not in row or row[name] is None:
        have = ", ".join(sorted(map(str, row))) or "none"
        raise DecodeError(f"{location}: missing field '{name}' (fields present: {have}){hint}",
                          url=url, key=location, field=name)
    value = row[name]
    if not isinstance(value, types):
        want = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise DecodeError(f"{location}: field '{name}' is {type(value).__name__}, want {want}",
                          url=url, key=location, field=name)
    return value


def optional(row: dict, name: str, url: str, location: str, types: type | tuple = str) -> Any:
    return None if row.get(name) is None else require(row, name, url, location, types)
