"""Shard URL expansion: brace ranges, globs and prefixes on any fsspec store.

``s3://bucket/c4/shard-{0000..0099}.tar`` expands locally (no listing); a glob
(``gs://b/c4/*.tar``) or a prefix ending in ``/`` is listed once, in the main process, and the
sorted result is what every rank and worker uses (the list is fingerprinted into saved states).
"""

from __future__ import annotations

from typing import Any

import fsspec
from braceexpand import braceexpand  # webdataset's own dependency

from ..errors import SourceError

SHARD_SUFFIXES = (".tar",)
ARROW_SUFFIXES = (".parquet", ".arrow", ".feather", ".ipc")  # source.format: arrow


def _join(protocol: str | tuple, path: str) -> str:
    proto = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
    return path if proto in ("file", "local") else f"{proto}://{path}"


def expand_urls(urls: list[str], storage_options: dict[str, Any] | None = None,
                suffixes: tuple[str, ...] = SHARD_SUFFIXES) -> list[str]:
    """Expand braces, globs and prefixes into a list of shard URLs (order kept, deduplicated).
    A prefix lists the files whose names end with one of ``suffixes``."""
    opts = storage_options or {}
    out: list[str] = []
    for spec in urls:
        for url in braceexpand(spec):
            if any(ch in url for ch in "*?[") or url.endswith("/"):
                try:
                    fs, path = fsspec.core.url_to_fs(url, **opts)
                    if url.endswith("/"):
                        found = [p for p in fs.find(path) if p.endswith(suffixes)]
                    else:
                        found = fs.glob(path)
                except Exception as exc:  # noqa: BLE001 - any backend error, named below
                    raise SourceError(f"cannot list shards: {exc}", url=url) from exc
                if not found:
                    raise SourceError("no shards match (source.urls)", url=url)
                out.extend(_join(fs.protocol, p) for p in sorted(found))
            else:
                out.append(url)
    seen: set[str] = set()
    return [u for u in out if not (u in seen or seen.add(u))]
