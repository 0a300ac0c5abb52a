"""A killed convert, re-run, finishes with the same bytes without rewriting complete shards;
an array job of 3 tasks + --finalize equals a single run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xtok_stream.convert import ConvertConfig, convert
from xtok_stream.errors import SourceError

ARGS = ["--id-field", "id", "--samples-per-shard", "8"]


def xtok(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "xtok_stream", "convert", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "out"
    s = convert([str(inputs["jsonl.gz"])], str(out), ConvertConfig(id_field="id",
                samples_per_shard=8), workers=1, progress=False)
    assert s.shards == 20
    return files(out)


def test_kill_and_rerun(inputs, single, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xtok_stream", "convert", str(inputs["jsonl.gz"]), "--out",
         str(out), *ARGS, "--workers", "1", "--no-progress", "--shard-delay-s", "0.15"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("shard-*.tar"))) < 5:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    done = sorted(p.name[:-5] for p in (out / "_xtok" / "done").glob("*.json"))
    assert 4 <= len(done) < 20, done
    assert not (out / "manifest.json").exists()
    mtimes = {n: (out / n).stat().st_mtime_ns for n in done}

    res = xtok(str(inputs["jsonl.gz"]), "--out", str(out), *ARGS, "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert f"({20 - len(done)} written now, {len(done)} already complete" in res.stdout
    assert {n: (out / n).stat().st_mtime_ns for n in done} == mtimes  # not rewritten
    got = files(out)
    got = {k: v for k, v in got.items() if ".tmp-" not in k}  # a temp file the kill left behind
    assert got == single


def test_corrupt_shard_is_rewritten(inputs, single, tmp_path):
    out = tmp_path / "out"
    cfg = ConvertConfig(id_field="id", samples_per_shard=8)
    convert([str(inputs["jsonl.gz"])], str(out), cfg, workers=1, progress=False)
    (out / "shard-000003.tar").write_bytes(b"truncated")
    data = bytearray((out / "shard-000004.tar").read_bytes())
    data[1000] ^= 1  # same size: only --verify (re-hashing) notices
    (out / "shard-000004.tar").write_bytes(bytes(data))
    s = convert([str(inputs["jsonl.gz"])], str(out), cfg, workers=1, progress=False)
    assert (s.written, s.skipped) == (1, 19)
    s = convert([str(inputs["jsonl.gz"])], str(out), cfg, workers=1, progress=False, verify=True)
    assert (s.written, s.skipped) == (1, 19)
    assert files(out) == single


def test_array_job_equals_single_run(inputs, single, tmp_path):
    out = tmp_path / "out"
    src = str(inputs["jsonl.gz"])
    res = xtok(src, "--out", str(out), *ARGS, "--plan-only")
    assert res.returncode == 0 and "planned 20 shards" in res.stdout, res.stderr
    # task 0 via the AWS Batch variables, task 2 via Cloud Run's, task 1 on the command line
    envs = [{"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "3"},
            {"CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "3"}]
    res = xtok(src, "--out", str(out), *ARGS, "--array", env=envs[0])
    assert res.returncode == 0, res.stderr
    assert "task 0/3: wrote 7 shards" in res.stdout and "run --finalize" in res.stdout
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in out.glob("*.tar")) == [f"shard-{k:06d}.tar"
                                                         for k in range(0, 20, 3)]
    res = xtok(src, "--out", str(out), *ARGS, "--finalize")
    assert res.returncode == 2
    missing = re.search(r"13 of 20 shards are missing or incomplete: (.*?);", res.stderr)
    assert missing and "shard-000001.tar" in missing.group(1), res.stderr
    res = xtok(src, "--out", str(out), *ARGS, "--array", env=envs[1])
    assert res.returncode == 0 and "task 2/3: wrote 6 shards" in res.stdout, res.stderr
    res = xtok(src, "--out", str(out), *ARGS, "--task-index", "1", "--task-count", "3",
               "--workers", "2")
    assert res.returncode == 0 and "task 1/3: wrote 7 shards" in res.stdout, res.stderr
    res = xtok(src, "--out", str(out), *ARGS, "--finalize")
    assert res.returncode == 0 and "finalized 20 shards" in res.stdout, res.stderr
    assert files(out) == single


def test_finalize_api_names_missing(inputs, tmp_path):
    out = tmp_path / "out"
    cfg = ConvertConfig(id_field="id", samples_per_shard=40)
    convert([str(inputs["parquet"])], str(out), cfg, workers=1, progress=False, slot=(1, 2))
    with pytest.raises(SourceError, match=r"2 of 4 shards .*shard-000000.tar, shard-000002.tar"):
        convert([str(inputs["parquet"])], str(out), cfg, progress=False, finalize=True)
