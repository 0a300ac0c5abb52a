import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_streams_with_two_teachers_and_prints_metrics(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "xtok_stream", "demo", "--out", str(tmp_path / "d"),
         "--max-batches", "3", "--seq-len", "512", "--batch-size", "2", "--num-workers", "0"],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "built 16 shards" in out and "tokens/s" in out
    assert "streamed 3 batches, 3,072 student tokens" in out
    for name in ("mistral-v3", "deepseek-v4"):
        line = next(x for x in out.splitlines() if f"teacher {name}:" in x)
        assert "byte-exact" in line and "exact chunks per student token" in line
    again = subprocess.run(  # second run reuses the shards and the pipeline YAML works on them
        [sys.executable, "-m", "xtok_stream", "run", "pipelines/distill.yaml", "--max-batches", "1",
         "--set", f"source.urls={tmp_path / 'd' / 'shards'}/", "--set", "student.seq_len=256",
         "--set", "num_workers=0"],
        capture_output=True, text=True, timeout=300, cwd=_repo())
    assert again.returncode == 0, again.stderr
    assert "rank 0: 1 batches, 2,048 tokens" in again.stdout


def _repo():
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])
