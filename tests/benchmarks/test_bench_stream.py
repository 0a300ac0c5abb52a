"""Smoke run of ``benchmarks/bench_stream.py`` on the embedded demo corpus (no dev corpus, no S3)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

EXPECTED_ROWS = [
    "| read-only: webdataset.WebDataset | local |",
    "| read-only: ours DocumentReader (1 lane) | local |",
    "| read + pack: tokenizer alone (encode, texts in memory) | memory |",
    "| read + pack: webdataset + naive tokenize/concat/cut | local |",
    "| read + pack: ours Loader num_workers=0 | local |",
    "| read + pack: ours Loader num_workers=1 | local |",
]


def test_bench_stream_smoke(tmp_path, monkeypatch):
    import bench_stream

    out = tmp_path / "stream.md"
    table = bench_stream.main(
        ["--builtin", "--no-s3", "--repeat", "1", "--shards", "8", "--workers", "1",
         "--out", str(out)]
    )
    assert out.read_text() == table
    assert "built-in demo corpus" in table and "--builtin --no-s3" in table
    for row in EXPECTED_ROWS:
        assert row in table, row
    assert "S3" not in table.split("| measurement |", 1)[1]  # --no-s3: no S3 rows
    assert "num_workers=2" not in table
    assert table.count("× webdataset.WebDataset [local]") == 1
    assert table.count("× tokenizer alone") == 3
    rows = [l for l in table.splitlines() if l.startswith("| read")]
    assert len(rows) == len(EXPECTED_ROWS)
    for line in rows:
        median_s = float(line.split("|")[3])
        assert median_s > 0


def test_bench_stream_missing_corpus(tmp_path):
    import bench_stream

    with pytest.raises(SystemExit, match="corpus not found"):
        bench_stream.main(["--corpus", str(tmp_path / "nope.parquet"), "--out", ""])
