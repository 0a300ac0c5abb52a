"""Shard URL expansion: brace ranges, globs and prefixes on any fsspec store.

``s3://bucket/c4/shard-{0000..0099}.tar`` expands locally (no listing); a glob
(``gs://b/c4/*.tar``) or a prefix ending in ``/`` is listed once, in the main process, and the
sorted result is what every rank and worker uses (the list is fingerprinted into saved states).
A prefix holding an ``xtok convert`` ``manifest.json`` expands to exactly the manifest's shards,
in its order (whatever else lies there is not read).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import fsspec
from braceexpand import braceexpand  # webdataset's own dependency

from ..errors import SourceError

SHARD_SUFFIXES = (".tar",)
ARROW_SUFFIXES = (".parquet", ".arrow", ".feather", ".ipc")  # source.format: arrow
LANE_SHARD = re.compile(r"(?:^|/)lane(\d+)-(\d+)\.tar$")  # source.format: precomputed


def suffixes(fmt: str) -> tuple[str, ...]:
    """The file endings a prefix of ``source.format`` ``fmt`` lists (arrow: tables, else tars)."""
    return ARROW_SUFFIXES if fmt == "arrow" else SHARD_SUFFIXES


def source_urls(source) -> list[str]:
    """One source's shard URLs (``source.urls`` expanded with its format's suffixes);
    ``source`` is a :class:`~xtok_stream.config.SourceConfig`."""
    return expand_urls(source.urls, source.storage_options, suffixes=suffixes(source.format))


def lane_urls(shards: Sequence[str], lane: int) -> list[str]:
    """The URLs of ``lane``'s precomputed shards (``lane{L}-{k}.tar``), in ``k`` order."""
    found = []
    for url in shards:
        m = LANE_SHARD.search(url)
        if m and int(m.group(1)) == lane:
            found.append((int(m.group(2)), url))
    return [u for _, u in sorted(found)]


def _join(protocol: str | tuple, path: str) -> str:
    proto = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
    return path if proto in ("file", "local") else f"{proto}://{path}"


def _manifest_shards(fs, path: str, url: str) -> list[str] | None:
    """The shard paths a ``manifest.json`` at the prefix lists, or None when there is none."""
    root = path.rstrip("/")
    try:
        man = json.loads(fs.cat_file(f"{root}/manifest.json"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise SourceError(f"manifest.json is not JSON: {exc}", url=f"{url}manifest.json") from exc
    try:
        return [f"{root}/{s['name']}" for s in man["shards"]]
    except (KeyError, TypeError) as exc:
        raise SourceError("manifest.json has no shards[].name list (not an xtok convert "
                          "manifest?)", url=f"{url}manifest.json") from exc


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
                    listed = (_manifest_shards(fs, path, url)
                              if url.endswith("/") and ".tar" in suffixes else None)
                    if listed is not None:
                        found = listed
                    elif url.endswith("/"):
                        found = sorted(p for p in fs.find(path) if p.endswith(suffixes))
                    else:
                        found = sorted(fs.glob(path))
                except SourceError:
                    raise
                except Exception as exc:  # any backend error, named below
                    raise SourceError(f"cannot list shards: {exc}", url=url) from exc
                if not found:
                    raise SourceError("no shards match (source.urls)", url=url)
                out.extend(_join(fs.protocol, p) for p in found)
            else:
                out.append(url)
    seen: set[str] = set()
    return [u for u in out if not (u in seen or seen.add(u))]
