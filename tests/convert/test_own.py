"""A convert owns its --out: a second writer of another plan is refused, a re-run with other
options leaves only its own shards, and a prefix with a manifest streams exactly those."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from xtok_stream.convert import ConvertConfig, convert
from xtok_stream.errors import SourceError
from xtok_stream.io.urls import expand_urls


def xtok(*args):
    return [sys.executable, "-m", "xtok_stream", "convert", *args, "--no-progress"]


def members(urls) -> list[str]:
    names = []
    for u in urls:
        with tarfile.open(u) as t:
            names += t.getnames()
    return names


def test_second_writer_is_refused(inputs, tmp_path):
    out = tmp_path / "out"
    src = str(inputs["jsonl.gz"])
    first = subprocess.Popen(xtok(src, "--out", str(out), "--id-field", "id",
                                  "--samples-per-shard", "8", "--workers", "1",
                                  "--shard-delay-s", "0.1"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "_xtok" / "lock.json").exists():
        time.sleep(0.02)
    second = subprocess.run(xtok(src, "--out", str(out), "--id-field", "id",
                                 "--samples-per-shard", "10"), capture_output=True, text=True)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode != 0
    assert "owned by another convert" in second.stderr and f"pid {first.pid}" in second.stderr
    assert "--break-lock" in second.stderr and "samples_per_shard': 8" in second.stderr
    assert "Traceback" not in second.stderr
    man = json.loads((out / "manifest.json").read_text())
    for s in man["shards"]:
        assert hashlib.sha256((out / s["name"]).read_bytes()).hexdigest() == s["sha256"]
    assert len(members(expand_urls([f"{out}/"]))) == 160
    assert not (out / "_xtok" / "lock.json").exists()  # released at the end


def _lock(out, host, pid, plan="other"):
    (out / "_xtok").mkdir(parents=True, exist_ok=True)
    (out / "_xtok" / "lock.json").write_text(json.dumps(
        {"plan_id": plan, "config": {"prefix": "x"},
         "owner": {"host": host, "pid": pid, "started": "2026-01-01T00:00:00Z"}}))


def test_stale_lock(inputs, tmp_path):
    out = tmp_path / "out"
    cfg = ConvertConfig(samples_per_shard=50)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock(out, socket.gethostname(), dead.pid)  # this host, process gone: taken over
    s = convert([str(inputs["parquet"])], str(out), cfg, workers=1, progress=False)
    assert s.written == 4
    _lock(out, "elsewhere", os.getpid())  # another host: cannot tell, so refused
    cfg2 = ConvertConfig(samples_per_shard=60)
    with pytest.raises(SourceError, match="host elsewhere.*--break-lock"):
        convert([str(inputs["parquet"])], str(out), cfg2, workers=1, progress=False)
    s = convert([str(inputs["parquet"])], str(out), cfg2, workers=1, progress=False,
                break_lock=True)
    assert s.written == 3


def test_rerun_with_other_options_leaves_only_its_shards(inputs, tmp_path):
    out = tmp_path / "out"
    src = [str(inputs["parquet"])]
    convert(src, str(out), ConvertConfig(samples_per_shard=8), workers=1, progress=False)
    convert(src, str(out), ConvertConfig(samples_per_shard=8, prefix="old"), workers=1,
            progress=False)
    (out / "shard-000001.tar.tmp-999").write_bytes(b"half")
    convert(src, str(out), ConvertConfig(samples_per_shard=40), workers=1, progress=False)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "manifest.json"] + [f"shard-{k:06d}.tar" for k in range(4)]
    assert sorted(p.name for p in (out / "_xtok" / "done").iterdir()) == [
        f"shard-{k:06d}.tar.json" for k in range(4)]
    assert len(members(expand_urls([f"{out}/"]))) == 160


def test_prefix_with_manifest_streams_exactly_its_shards(inputs, tmp_path):
    out = tmp_path / "out"
    convert([str(inputs["parquet"])], str(out), ConvertConfig(samples_per_shard=40), workers=1,
            progress=False)
    (out / "zz-extra.tar").write_bytes((out / "shard-000000.tar").read_bytes())
    (out / "sub").mkdir()
    (out / "sub" / "more.tar").write_bytes((out / "shard-000001.tar").read_bytes())
    assert expand_urls([f"{out}/"]) == [str(out / f"shard-{k:06d}.tar") for k in range(4)]
    (out / "manifest.json").write_text('{"shards": 3}')
    with pytest.raises(SourceError, match="manifest.json"):
        expand_urls([f"{out}/"])


def test_foreign_folder_is_refused(inputs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.tar").write_bytes(b"precious")
    with pytest.raises(SourceError, match="did not write.*notes.tar"):
        convert([str(inputs["parquet"])], str(out), ConvertConfig(), workers=1, progress=False)
    assert (out / "notes.tar").read_bytes() == b"precious"


def test_ownership_on_s3(s3, inputs):
    """The same guarantees on an object store (moto): lock refused / taken over, stale shards
    deleted after the manifest, the prefix expands to the manifest's shards."""
    import fsspec

    opts = s3.storage_options
    fs = fsspec.filesystem("s3", **opts)
    out = "s3://xtok-test/own"
    src = [str(inputs["parquet"])]
    convert(src, out, ConvertConfig(samples_per_shard=8), storage_options=opts, workers=1,
            progress=False)
    fs.pipe_file("xtok-test/own/_xtok/lock.json", json.dumps(
        {"plan_id": "other", "config": {}, "owner": {"host": "elsewhere", "pid": 1}}).encode())
    cfg = ConvertConfig(samples_per_shard=40)
    with pytest.raises(SourceError, match="owned by another convert.*host elsewhere"):
        convert(src, out, cfg, storage_options=opts, workers=1, progress=False)
    convert(src, out, cfg, storage_options=opts, workers=1, progress=False, break_lock=True)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("xtok-test/own")) == [
        "_xtok", "manifest.json"] + [f"shard-{k:06d}.tar" for k in range(4)]
    assert not fs.exists("xtok-test/own/_xtok/lock.json")
    assert expand_urls([f"{out}/"], opts) == [f"{out}/shard-{k:06d}.tar" for k in range(4)]


def test_help_says_who_owns_out():
    res = subprocess.run([sys.executable, "-m", "xtok_stream", "convert", "--help"],
                         capture_output=True, text=True, timeout=60)
    text = " ".join(res.stdout.split())
    assert "The convert owns it" in text and "--break-lock" in text and "lock.json" in text


def test_a_race_for_a_free_s3_out_is_lost_at_once(s3, monkeypatch):
    """Two converts both find no lock on s3 --out; the second one's write must not replace the
    first one's lock (the first would then fail at its manifest after all its work): S3's
    conditional create refuses it at once, naming the owner."""
    from xtok_stream.convert import own

    opts, out = s3.storage_options, "s3://xtok-test/own-race"
    own.acquire(out, "plan-a", {"samples_per_shard": 8}, opts)
    real = own.read_lock
    calls = []

    def first_read_finds_nothing(o, options):
        calls.append(o)
        return None if len(calls) == 1 else real(o, options)

    monkeypatch.setattr(own, "read_lock", first_read_finds_nothing)
    with pytest.raises(SourceError, match="owned by another convert.*plan-a"):
        own.acquire(out, "plan-b", {"samples_per_shard": 40}, opts)
    monkeypatch.setattr(own, "read_lock", real)
    assert own.read_lock(out, opts)["plan_id"] == "plan-a"
    own.check(out, "plan-a", opts)  # the first run still owns it
    own.release(out, "plan-a", opts)
