"""Smoke run of ``benchmarks/bench_align_families.py`` on three families and the builtin texts
(no timings asserted; the oracle's false-exact count must still be 0)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))


def test_bench_align_families_smoke(tmp_path):
    import bench_align_families

    out = tmp_path / "families.md"
    assert bench_align_families.main([
        "--builtin-text", "--samples", "1", "--chars", "3000", "--repeat", "1",
        "--families", "qwen2,mistral-v3,wordpiece-uncased", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines()
            if line.startswith(("| qwen2 ", "| mistral-v3 ", "| wordpiece-uncased "))]
    assert len(rows) == 6  # every ordered pair of the three
    assert "| wordpiece-uncased | qwen2 | wordpiece-lossy / byte_level |" in text
    assert re.search(r"false exact total 0;", text)


def test_bench_align_families_unknown_family_is_refused(tmp_path):
    import bench_align_families

    with pytest.raises(SystemExit):
        bench_align_families.main(["--families", "qwen3", "--out", str(tmp_path / "x.md")])
