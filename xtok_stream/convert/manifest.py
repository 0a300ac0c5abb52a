"""``manifest.json``: what a conversion produced and from what, byte-deterministic.

::

    {"version": 1, "plan_id": "...", "config": {...ConvertConfig...},
     "sources": [{"url", "format", "bytes", "rows", "kept"}, ...],
     "shards": [{"name", "samples", "bytes", "sha256"}, ...],
     "total_samples": N, "total_bytes": B}

It is written last - after a whole run, or by ``--finalize`` after array tasks - from the shard
results or done markers, only when every planned shard is present with the recorded size.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec

from ..errors import SourceError
from ..io.shards import put_atomic
from .plan import Plan
from .write import is_complete, read_marker

MANIFEST = "manifest.json"


def build_manifest(plan: Plan, results: dict[str, dict]) -> dict:
    shards = []
    for spec in plan.shards:
        r = results[spec["name"]]
        shards.append({k: r[k] for k in ("name", "samples", "bytes", "sha256")})
    return {
        "version": 1,
        "plan_id": plan.plan_id,
        "config": plan.to_dict_config(),
        "sources": [{"url": i.url, "format": i.fmt, "bytes": i.size, "rows": r, "kept": k}
                    for i, r, k in zip(plan.inputs, plan.rows, plan.kept)],
        "shards": shards,
        "total_samples": sum(s["samples"] for s in shards),
        "total_bytes": sum(s["bytes"] for s in shards),
    }


def write_manifest(out: str, man: dict, opts: dict[str, Any]) -> str:
    url = f"{out.rstrip('/')}/{MANIFEST}"
    put_atomic(url, json.dumps(man, indent=1, sort_keys=True).encode() + b"\n", opts)
    return url


def collect(out: str, plan: Plan, opts: dict[str, Any], verify: bool = False) -> dict[str, dict]:
    """Done markers of every planned shard, checked against the stored objects; raises a
    SourceError naming the missing or incomplete shards."""
    fs, root = fsspec.core.url_to_fs(out.rstrip("/"), **opts)
    try:
        sizes = {e["name"].rsplit("/", 1)[-1]: e["size"] for e in fs.ls(root, detail=True)}
    except FileNotFoundError:
        sizes = {}
    names = [s["name"] for s in plan.shards]
    with ThreadPoolExecutor(16) as pool:
        markers = list(pool.map(lambda n: read_marker(out, n, opts), names))
    found, missing = {}, []
    for name, marker in zip(names, markers):
        if name in sizes and is_complete(out, marker, plan.plan_id, opts, verify, sizes[name]):
            found[name] = marker
        else:
            missing.append(name)
    if missing:
        shown = ", ".join(missing[:20]) + (f", ... ({len(missing)} in all)" if len(missing) > 20
                                           else "")
        raise SourceError(f"{len(missing)} of {len(names)} shards are missing or incomplete: "
                          f"{shown}; re-run the array tasks that own them (shard k belongs to "
                          "task k % --task-count), then --finalize again", url=out)
    return found
