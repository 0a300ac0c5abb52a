"""`xtok demo --chat` builds its conversation shards and streams them with two teachers, and
pipelines/chat-distill.yaml runs on those shards."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = str(Path(__file__).resolve().parents[2])


def test_demo_chat_streams_conversations_with_two_teachers(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "xtok_stream", "demo", "--chat", "--out", str(tmp_path / "d"),
         "--max-batches", "2", "--seq-len", "256", "--batch-size", "2", "--num-workers", "0"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "streamed 2 batches" in res.stdout
    for name in ("mistral-v3", "deepseek-v4"):
        line = next(x for x in res.stdout.splitlines() if f"teacher {name}:" in x)
        assert "byte-exact" in line
    assert "<|im_start|>" in res.stdout  # the preview shows the student's ChatML
    again = subprocess.run(
        [sys.executable, "-m", "xtok_stream", "run", "pipelines/chat-distill.yaml",
         "--max-batches", "1", "--set", f"source.urls={tmp_path / 'd' / 'chat-shards'}/",
         "--set", "student.seq_len=256", "--set", "num_workers=0"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert again.returncode == 0, again.stderr
    assert "rank 0: 1 batches" in again.stdout
