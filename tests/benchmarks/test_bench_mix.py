"""Smoke run of ``benchmarks/bench_mix.py`` on the embedded demo corpus (no timings asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))


def test_bench_mix_smoke(tmp_path):
    import bench_mix

    out = tmp_path / "mix.md"
    assert bench_mix.main(["--builtin", "--limit-docs", "60", "--repeat", "1", "--seq-len", "256",
                           "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 3-source mixture |" in text and "| one source |" in text
    assert "3 sources x 1,024 lanes" in text
