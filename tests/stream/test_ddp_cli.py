"""The README scenario end to end: `xtok run` under torchrun, 2 gloo ranks x 2 DataLoader workers,
reading the loopback S3 with two teachers; exactly-once coverage, equal batch counts per rank,
bit-identical resume (student and teacher tokens and chunk maps), and a resume under another
topology."""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers import assert_exactly_once

pytestmark = pytest.mark.slow


def xtok_run(args, nproc, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}",
               "-m", "xtok_stream", "run", *args]
    else:
        cmd = [sys.executable, "-m", "xtok_stream", "run", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def read_dump(path, ranks):
    return {r: [json.loads(line) for line in open(f"{path}.rank{r}")] for r in range(ranks)}


def pieces(dumps):
    return [p for lines in dumps.values() for line in lines for s in line["sequences"]
            for p in s["pieces"]]


@pytest.fixture()
def pipeline(tmp_path, s3, s3_shards):
    cfg = {
        "source": {"urls": "s3://xtok-test/corpus/shard-{000000..000007}.tar",
                   "storage_options": s3.storage_options},
        "student": {"tokenizer": "pkg:qwen2", "seq_len": 256},
        "seed": 3, "epochs": 1, "batch_size": 2, "num_workers": 2, "num_lanes": 8,
        "shuffle": {"buffer": 4},
        "teachers": [{"tokenizer": "pkg:mistral-v3"}, {"tokenizer": "pkg:deepseek-v4"}],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_two_ranks_two_workers_exactly_once_and_resume(pipeline, tmp_path, s3_shards):
    _, texts = s3_shards
    xtok_run([pipeline, "--dump", "full"], 2, tmp_path)
    full = read_dump(tmp_path / "full", 2)
    assert len(full[0]) == len(full[1]) > 4  # equal batch counts: no rank hangs
    assert_exactly_once(pieces(full), texts)
    keys0 = {p[0] for line in full[0] for s in line["sequences"] for p in s["pieces"]}
    keys1 = {p[0] for line in full[1] for s in line["sequences"] for p in s["pieces"]}
    assert keys0 and keys1  # both ranks got data
    seqs = [s for lines in full.values() for line in lines for s in line["sequences"]]
    assert all(set(s["teachers"]) == {"mistral-v3", "deepseek-v4"} for s in seqs)

    k = 3
    xtok_run([pipeline, "--max-batches", str(k), "--save-state", "state.json", "--dump", "a"],
             2, tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert set(state["ranks"]) == {"0", "1"} and len(json.dumps(state)) < 16_000
    xtok_run([pipeline, "--resume", "state.json", "--dump", "b"], 2, tmp_path)
    a, b = read_dump(tmp_path / "a", 2), read_dump(tmp_path / "b", 2)
    for r in range(2):
        assert a[r] + b[r] == full[r], f"rank {r}: resumed run differs from the uninterrupted one"

    # other topologies load the same state: nothing lost, nothing twice
    xtok_run([pipeline, "--resume", "state.json", "--dump", "c", "--set", "num_workers=3"],
             1, tmp_path)
    assert_exactly_once(pieces(a) + pieces(read_dump(tmp_path / "c", 1)), texts)
    xtok_run([pipeline, "--resume", "state.json", "--dump", "d", "--set", "num_workers=1"],
             3, tmp_path)
    assert_exactly_once(pieces(a) + pieces(read_dump(tmp_path / "d", 3)), texts)


def _children(pid):
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.split("/")[2]))
    return out


def test_sigkill_a_rank_then_restart_from_the_last_saved_state(pipeline, tmp_path, s3_shards):
    """A rank is SIGKILLed at a random point; the restart resumes from the trainer's last saved
    state; ledger lines up to that state's step plus the restart's lines are exactly once."""
    _, texts = s3_shards
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "xtok_stream", "run", pipeline, "--set", "teachers=[]", "--set", "num_workers=1",
           "--set", "student.seq_len=64", "--save-every", "2", "--save-state", "state.json",
           "--dump", "first"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    rng = random.Random(11)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "state.json").exists() and time.time() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "state.json").exists(), "no state was saved"
        time.sleep(rng.uniform(0.0, 1.5))
        ranks = [p for p in _children(proc.pid)]
        assert ranks, "no rank processes found"
        os.kill(rng.choice(ranks), signal.SIGKILL)
        proc.wait(120)
        assert proc.returncode != 0  # the run died mid-way rather than finishing first
    finally:
        if proc.poll() is None:
            proc.kill()
    state = json.loads((tmp_path / "state.json").read_text())
    first = read_dump(tmp_path / "first", 2)
    kept = {r: [line for line in lines if line["step"] <= state["step"]]
            for r, lines in first.items()}
    assert all(len(v) == state["step"] for v in kept.values())
    xtok_run([pipeline, "--set", "teachers=[]", "--set", "num_workers=1", "--set",
              "student.seq_len=64", "--resume", "state.json", "--dump", "second"], 2, tmp_path)
    second = read_dump(tmp_path / "second", 2)
    assert_exactly_once(pieces(kept) + pieces(second), texts)
