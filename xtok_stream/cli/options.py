"""Option parsing shared by subcommands."""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError


def storage_options(items: list[str] | None) -> dict[str, Any]:
    """``--storage-option k=v`` (repeatable) -> fsspec kwargs; values typed as YAML."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--storage-option expects key=value, got {item!r}")
        out[key] = yaml.safe_load(raw)
    return out
