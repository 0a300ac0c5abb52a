"""Save and load loader states as JSON files on any fsspec URL, atomically."""

from __future__ import annotations

import json
from typing import Any

import fsspec

from ..errors import StateError
from .shards import put_atomic


def save_state(url: str, state: dict, storage_options: dict[str, Any] | None = None) -> None:
    put_atomic(url, json.dumps(state, sort_keys=True).encode(), storage_options)


def load_state(url: str, storage_options: dict[str, Any] | None = None) -> dict:
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as f:
            return json.loads(f.read())
    except FileNotFoundError as exc:
        raise StateError(f"state file not found: {url}") from exc
    except json.JSONDecodeError as exc:
        raise StateError(f"state file {url} is not valid JSON: {exc}") from exc
