"""A convert owns its ``--out``: one writer at a time, and nothing left there that the manifest
does not list.

Lock: ``{out}/_xtok/lock.json`` = ``{"plan_id", "config", "owner": {"host", "pid", "started"}}``,
taken before anything is written. Runs of the *same* plan (array-job tasks, ``--plan-only``, a
restart after a kill, ``--finalize``) share it - they write identical bytes. A run of another
plan (other inputs or options) is refused with the owner and its options named, unless the
lock is stale: its owner ran on this host and that process is gone, or ``--break-lock`` is
given (for an owner on another host that is known to be dead). Locally the lock is created with
``O_EXCL`` (atomic); on S3 with a conditional write (``If-None-Match: *``, atomic: of two runs
racing for a free ``--out`` one is refused at once); on other object stores, and when a stale
lock is replaced, it is written, read back and checked again before the manifest, so of two
racing runs at most one finishes. A whole run releases the lock when it
ends (also on error); array tasks leave it to ``--finalize``.

Cleanup, once the manifest is written: top-level ``*.tar`` objects it does not list (an
earlier run's extra shards, another ``--prefix``), ``*.tmp-PID`` files of killed writes and done
markers of shards not in the plan are deleted. A stale ``manifest.json`` of another plan is
deleted when the new run starts, so no reader trusts it while shards are rewritten. A folder
with files but neither ``manifest.json`` nor ``_xtok/`` was not written by ``xtok convert``
and is refused.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import fsspec

from ..errors import SourceError

LOCK = "_xtok/lock.json"
MANIFEST = "manifest.json"


def _fs(out: str, opts: dict[str, Any]):
    fs, root = fsspec.core.url_to_fs(out.rstrip("/"), **opts)
    return fs, root.rstrip("/")


def _is_local(fs) -> bool:
    p = fs.protocol
    return "file" in (p if isinstance(p, (tuple, list)) else (p,))


def read_lock(out: str, opts: dict[str, Any]) -> dict | None:
    fs, root = _fs(out, opts)
    try:
        lock = json.loads(fs.cat_file(f"{root}/{LOCK}"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}  # unreadable (a torn local write): treated as stale below
    return lock if isinstance(lock, dict) else {}


def _stale(lock: dict) -> bool:
    owner = lock.get("owner")
    if not isinstance(owner, dict) or not isinstance(lock.get("plan_id"), str):
        return True
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return False
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _refuse(out: str, lock: dict) -> SourceError:
    o = lock.get("owner", {})
    return SourceError(
        f"{out} is owned by another convert (plan {lock.get('plan_id')}, host {o.get('host')}, "
        f"pid {o.get('pid')}, started {o.get('started')}, options {lock.get('config')}); wait "
        f"for it to finish, or - if that run is dead - pass --break-lock (or delete "
        f"{out.rstrip('/')}/{LOCK})", url=out)


def acquire(out: str, plan_id: str, config: dict, opts: dict[str, Any],
            break_lock: bool = False) -> None:
    """Take (or share, for the same plan) the lock on ``out``; raises SourceError naming the
    other owner when another plan holds it."""
    fs, root = _fs(out, opts)
    _refuse_foreign(fs, root, out)
    lock = read_lock(out, opts)
    if lock is not None and lock.get("plan_id") == plan_id:
        return
    if lock is not None and not (break_lock or _stale(lock)):
        raise _refuse(out, lock)
    body = json.dumps({"plan_id": plan_id, "config": config, "owner": {
        "host": socket.gethostname(), "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}},
        sort_keys=True).encode()
    path = f"{root}/{LOCK}"
    if _is_local(fs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if lock is not None:  # stale or broken on purpose: replace it
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another run took it between our read and create
            raise _refuse(out, read_lock(out, opts) or {}) from None
        with os.fdopen(fd, "wb") as f:
            f.write(body)
    elif lock is None and hasattr(fs, "_call_s3"):  # s3fs: create only if absent
        try:
            fs.pipe_file(path, body, mode="create")
        except FileExistsError:  # another run created it between our read and our write
            raise _refuse(out, read_lock(out, opts) or {}) from None
        except OSError:  # an S3-compatible store without conditional writes: write + check
            fs.pipe_file(path, body)
    else:
        fs.pipe_file(path, body)
    check(out, plan_id, opts)


def check(out: str, plan_id: str, opts: dict[str, Any]) -> None:
    """Raise if the lock is no longer this plan's (a racing run on an object store took it)."""
    lock = read_lock(out, opts)
    if lock is None or lock.get("plan_id") != plan_id:
        raise _refuse(out, lock or {})


def release(out: str, plan_id: str, opts: dict[str, Any]) -> None:
    lock = read_lock(out, opts)
    if lock is not None and lock.get("plan_id") == plan_id:
        fs, root = _fs(out, opts)
        try:
            fs.rm_file(f"{root}/{LOCK}")
        except FileNotFoundError:
            pass


def _refuse_foreign(fs, root: str, out: str) -> None:
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    if names and "_xtok" not in names and MANIFEST not in names:
        shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise SourceError(f"--out holds files that xtok convert did not write ({shown}); a "
                          "convert owns its --out and deletes shards its manifest does not "
                          "list: give an empty or new folder", url=out)


def drop_stale_manifest(out: str, plan_id: str, opts: dict[str, Any]) -> None:
    """Delete a manifest.json written for another plan: it no longer describes the shards."""
    fs, root = _fs(out, opts)
    try:
        man = json.loads(fs.cat_file(f"{root}/{MANIFEST}"))
    except FileNotFoundError:
        return
    except ValueError:
        man = {}
    if not isinstance(man, dict) or man.get("plan_id") != plan_id:
        fs.rm_file(f"{root}/{MANIFEST}")


def remove_unlisted(out: str, shard_names: list[str], opts: dict[str, Any],
                    markers: str) -> list[str]:
    """After the manifest: delete top-level ``*.tar`` it does not list, ``*.tmp-*`` files and
    done markers of other shards; returns the deleted names."""
    fs, root = _fs(out, opts)
    keep = set(shard_names)
    gone = []
    for folder, want in ((root, lambda n: (n.endswith(".tar") and n not in keep) or _dead_tmp(n)),
                         (f"{root}/{markers}", lambda n: n[:-5] not in keep or _dead_tmp(n))):
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            continue
        for e in entries:
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            if e.get("type") != "directory" and want(name):
                fs.rm_file(e["name"])
                gone.append(name)
    return gone


def _dead_tmp(name: str) -> bool:
    """A ``*.tmp-PID`` file whose writer is gone (a run of the same plan on this host may still
    be about to rename its own)."""
    head, sep, pid = name.rpartition(".tmp-")
    if not sep or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return int(pid) == os.getpid()
