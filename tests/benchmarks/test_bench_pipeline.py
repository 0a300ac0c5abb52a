"""Smoke run of ``benchmarks/bench_pipeline.py`` on the embedded demo corpus (no dev corpus)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

MEASUREMENTS = [
    "tokenization-only ceiling",
    "ours in-process (build_consumer)",
    "ours Loader num_workers=1",
]


def test_bench_pipeline_smoke(tmp_path):
    import bench_pipeline

    out = tmp_path / "pipeline.md"
    table = bench_pipeline.main(
        ["--builtin", "--seq-len", "512", "--repeat", "1", "--batches", "2",
         "--reference-samples", "1", "--out", str(out)]
    )
    assert out.read_text() == table
    assert "built-in demo corpus" in table and "--builtin --seq-len 512" in table
    assert "seq_len 512, batch 8" in table

    body = table.split("| teachers | measurement |", 1)[1]
    rows = [line for line in body.splitlines() if line.startswith("| ") and "---" not in line]
    for k in (0, 1, 2):
        for name in MEASUREMENTS:
            assert f"| {k} | {name} |" in table, (k, name)
    for k in (1, 2):
        assert f"| {k} | reference path (tokenize + DP align) (1 seq) |" in table
    assert len(rows) == 3 * len(MEASUREMENTS) + 2
    for line in rows:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert float(cells[2]) > 0  # median s
        assert float(cells[4].replace(",", "")) > 0  # tokens/s
        if cells[1] in MEASUREMENTS[1:]:
            assert cells[5].endswith("%")  # ours / ceiling
            if cells[0] != "0":
                assert cells[6].endswith("×")  # ours / reference

    goals = table.split("Goals (medians, two teachers):", 1)[1]
    assert goals.count("goal ≥ 50,000") == 2 and goals.count("goal ≥ 60%") == 2
    assert all(("✅" in l) != ("❌" in l) for l in goals.splitlines() if "goal ≥" in l)


def test_bench_pipeline_missing_corpus(tmp_path):
    import bench_pipeline

    with pytest.raises(SystemExit, match="corpus not found"):
        bench_pipeline.main(["--corpus", str(tmp_path / "nope.parquet"), "--out", ""])


def test_bench_pipeline_bad_teachers():
    import bench_pipeline

    with pytest.raises(SystemExit, match="--teachers"):
        bench_pipeline.main(["--builtin", "--teachers", "3", "--out", ""])
