"""The fingerprint is a deny-list: every config field changes it unless declared in
``config.TRANSPORT_ONLY``. The test walks the config's fields, so a field added later is covered
without touching this file. (That the transport-only fields leave the stream unchanged is
checked where they act: tests/stream/test_loader.py for the DataLoader settings, test_faults.py
for storage options and retries.)"""

from __future__ import annotations

import types
import typing

import pytest
from pydantic import BaseModel

from xtok_stream.config import TRANSPORT_ONLY, PipelineConfig, load_config

BASE = {"source": {"urls": ["shards/a.tar"]}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 64},
        "teachers": [{"tokenizer": "pkg:mistral-v3"}]}
# a mixture (sources.*, mixture.*) and chat mode (chat.*) are walked on bases that have them
_TAIL = {k: v for k, v in BASE.items() if k != "source"}
BASE_MIX = {**_TAIL, "sources": [{"name": "a", "urls": ["a/0.tar"], "weight": 0.6},
                                 {"name": "b", "urls": ["b/0.tar"], "weight": 0.4}]}
BASE_MIX_EPOCHS = {**BASE_MIX, "mixture": {"end": "epochs", "source": "a", "epochs": 1}}
BASE_CHAT = {**BASE, "chat": {}}
# values the generic rule below cannot guess (they must name a source / stay consistent)
OTHER = {"mixture.source": "b", "mixture.epochs": 2, "mixture.end": "first_exhausted",
         "chat.templates": {"student": "{% for m in messages %}{{ m.content }}{% endfor %}"}}


def _base(path: str) -> dict:
    if path.startswith(("sources.", "mixture.")):
        return BASE_MIX_EPOCHS if path in ("mixture.source", "mixture.epochs") else BASE_MIX
    return BASE_CHAT if path.startswith("chat.") else BASE


def _unwrap(annotation):
    """``X | None`` -> ``X`` (Optional sections are walked like required ones)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _model(annotation):
    annotation = _unwrap(annotation)
    for t in (annotation, *typing.get_args(annotation)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def leaf_paths(model: type[BaseModel], prefix: str = "") -> list[tuple[str, object]]:
    """(dotted path, annotation) of every leaf field; list-of-model fields as ``name.*.``."""
    out = []
    for name, f in model.model_fields.items():
        path = prefix + name
        sub = _model(f.annotation)
        if sub is not None and typing.get_origin(_unwrap(f.annotation)) is list:
            out += leaf_paths(sub, path + ".*.")
        elif sub is not None:
            out += leaf_paths(sub, path + ".")
        else:
            out.append((path, f.annotation))
    return out


def other_value(value, annotation):
    """A different valid value for a field (the validators decide; see the assertion below)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return next(a for a in args if a != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value * 2 if value > 2 else value + 3
    if isinstance(value, float):
        return value / 2 + 0.25 if value < 1 else value * 2
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, dict):
        return {**value, "anon": True}
    if isinstance(value, list):
        return [*value, "shards/b.tar"]
    if value is None:  # Optional[...]: a value of the inner type
        inner = [a for a in args if a is not type(None)]
        if any(getattr(a, "__origin__", None) is typing.Literal for a in inner):
            return typing.get_args(inner[0])[0]
        return {int: 7, str: "seven", float: 0.5}[inner[0]]
    raise AssertionError(f"no other value for {annotation}: add a case to other_value")


def _get(tree, parts):
    for p in parts:
        tree = tree[0] if p == "*" else tree[p]
    return tree


def _set(tree, parts, value):
    for p in parts[:-1]:
        tree = tree[0] if p == "*" else tree.setdefault(p, {})
    tree[parts[-1]] = value


def _matches(path: str, declared: str) -> bool:
    return path == declared or path.startswith(declared + ".")


PATHS = leaf_paths(PipelineConfig)


def test_the_walk_sees_every_section():
    names = {p for p, _ in PATHS}
    assert {"seed", "source.text_field", "source.on_bad_data.corrupt_shard", "student.seq_len",
            "teachers.*.max_comb_len", "shuffle.buffer", "source.retry.max_attempts",
            "num_workers"} <= names


@pytest.mark.parametrize(("path", "annotation"), PATHS, ids=[p for p, _ in PATHS])
def test_every_field_shapes_the_stream_unless_declared_transport_only(path, annotation):
    base = load_config(_base(path))
    tree = base.model_dump(mode="json")
    parts = path.split(".")
    value = OTHER[path] if path in OTHER else other_value(_get(tree, parts), annotation)
    _set(tree, parts, value)
    changed = PipelineConfig.model_validate(tree)
    assert _get(changed.model_dump(mode="json"), parts) != _get(base.model_dump(mode="json"),
                                                                 parts), f"{path}: edit lost"
    transport = any(_matches(path, d) for d in TRANSPORT_ONLY)
    same = changed.stream_shape() == base.stream_shape()
    assert same == transport, (
        f"{path}: {'in' if transport else 'not in'} TRANSPORT_ONLY but the fingerprinted shape "
        f"{'changed' if not same else 'did not change'}")


def test_declared_paths_exist():
    names = {p for p, _ in PATHS}
    for d in TRANSPORT_ONLY:
        assert any(_matches(n, d) for n in names), f"TRANSPORT_ONLY names no field: {d}"


def test_shuffle_state_budget_is_enforced():
    from xtok_stream.errors import ConfigError

    with pytest.raises(ConfigError, match="shuffle.state_budget"):
        load_config({**BASE, "num_lanes": 1024, "shuffle": {"buffer": 1000}})
    load_config({**BASE, "num_lanes": 1024, "shuffle": {"buffer": 1000, "state_budget": 32 << 20}})
