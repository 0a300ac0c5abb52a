"""One shard task: read the shard's slices, encode the tar, store it atomically, mark it done.

A task is a small picklable ``ShardTask`` (the plan's shard entry plus the inputs it reads), so
the process pool, Ray and array jobs all run exactly this function and write the same bytes.

Done markers: after the shard is stored, ``{out}/_xtok/done/{name}.json`` records
``{name, samples, bytes, sha256, plan_id}``. A task whose marker carries the same ``plan_id`` and
whose shard object has the recorded size (and, with ``verify``, the recorded sha256) returns
without writing - so a killed run, restarted, only writes what it had not finished. A shard that
was stored but not marked (killed in between) is rewritten with the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import fsspec

from ..errors import SourceError, XtokError
from ..io.records_in import InputFile, default_key, iter_rows
from ..io.shards import encode_shard, put_atomic, safe_key
from .sample import sample_of

MARKERS = "_xtok/done"


def marker_url(out: str, name: str) -> str:
    return f"{out.rstrip('/')}/{MARKERS}/{name}.json"


def shard_url(out: str, name: str) -> str:
    return f"{out.rstrip('/')}/{name}"


@dataclass(frozen=True)
class ShardTask:
    out: str
    plan_id: str
    shard: dict                 # {"name", "samples", "slices": [[file, start, stop, offset, line]]}
    inputs: dict[int, InputFile]  # only the inputs this shard reads
    text_field: str
    id_field: str | None
    min_chars: int
    storage_options: dict[str, Any]
    max_record_bytes: int | None = None  # bound on one JSONL line (--max-record-mb)
    verify: bool = False        # re-hash a complete shard before skipping it
    delay_s: float = 0.0        # testing aid: sleep before writing (lets a test kill mid-run)
    messages_field: str | None = None  # conversations instead of text (convert/sample.py)


_MARKER_TYPES = {"name": str, "samples": int, "bytes": int, "sha256": str, "plan_id": str}


def read_marker(out: str, name: str, opts: dict[str, Any]) -> dict | None:
    """The shard's done marker, or None when it is absent, not JSON or not of the marker's
    shape (a foreign or damaged file): the shard is then rewritten, never trusted."""
    try:
        with fsspec.open(marker_url(out, name), "rb", **opts) as f:
            marker = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("name") != name or any(
            type(marker.get(k)) is not t for k, t in _MARKER_TYPES.items()):
        return None
    return marker


def is_complete(out: str, marker: dict | None, plan_id: str, opts: dict[str, Any],
                verify: bool, size: int | None = None) -> bool:
    """Marker of this plan present and the shard object matches it (size; sha256 if verify)."""
    if not marker or marker.get("plan_id") != plan_id:
        return False
    url = shard_url(out, marker["name"])
    fs, path = fsspec.core.url_to_fs(url, **opts)
    try:
        if size is None:
            size = fs.size(path)
        if size != marker["bytes"]:
            return False
        if verify:
            h = hashlib.sha256()
            with fs.open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
            return h.hexdigest() == marker["sha256"]
    except FileNotFoundError:
        return False
    return True


def _samples(task: ShardTask):
    cols = [task.messages_field or task.text_field] + ([task.id_field] if task.id_field else [])
    opts = task.storage_options
    for f, start, stop, offset, line in task.shard["slices"]:
        inp = task.inputs[f]
        for row, where, rec in iter_rows(inp, cols, start, stop, opts, offset=offset, line=line,
                                         max_record_bytes=task.max_record_bytes):
            doc_id, ext, text, nchars = sample_of(inp.url, where, rec, text_field=task.text_field,
                                                  id_field=task.id_field,
                                                  messages_field=task.messages_field)
            if nchars < task.min_chars:
                continue
            key = safe_key(doc_id if doc_id is not None else default_key(inp.stem, row))
            yield {"__key__": key, ext: text}


def run_shard(task: ShardTask) -> dict:
    """``{name, samples, bytes, sha256, written}``, or ``{name, error}`` with the library error
    itself (it pickles with its type and fields; the caller raises it)."""
    name = task.shard["name"]
    try:
        marker = read_marker(task.out, name, task.storage_options)
        if is_complete(task.out, marker, task.plan_id, task.storage_options, task.verify):
            return {**{k: marker[k] for k in ("name", "samples", "bytes", "sha256")},
                    "written": False}
        data, n = encode_shard(_samples(task))
        if n != task.shard["samples"]:
            raise SourceError(f"{name}: planned {task.shard['samples']} samples, read {n}; an "
                              f"input changed since planning (delete {task.out}/_xtok/plan.json "
                              "to re-plan)",
                              url=", ".join(sorted({i.url for i in task.inputs.values()})))
        if task.delay_s:
            time.sleep(task.delay_s)
        digest = hashlib.sha256(data).hexdigest()
        put_atomic(shard_url(task.out, name), data, task.storage_options)
        info = {"name": name, "samples": n, "bytes": len(data), "sha256": digest}
        put_atomic(marker_url(task.out, name),
                   json.dumps({**info, "plan_id": task.plan_id}, sort_keys=True).encode(),
                   task.storage_options)
        return {**info, "written": True}
    except XtokError as exc:
        return {"name": name, "error": exc}
