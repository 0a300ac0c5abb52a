"""Smoke run of ``benchmarks/bench_state.py`` (shuffle-buffer part) on the embedded demo corpus."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))


def test_bench_state_smoke(tmp_path):
    import bench_state

    out = tmp_path / "state.md"
    table = bench_state.main(["--builtin", "--repeat", "1", "--skip-startup", "--seq-len", "512",
                              "--out", str(out)])
    assert out.read_text() == table
    assert "| no buffer |" in table and "| shuffle.buffer 10 |" in table
    assert "Restore of a lane" in table
