"""Damaged eval files raise a typed error naming the file (and line), never a traceback from
the decompressor or an eval set of 0 records."""

from __future__ import annotations

import gzip
import json

import pytest

from xtok_stream.errors import DecodeError, SourceError
from xtok_stream.evals.read import iter_rows

ROWS = "".join(json.dumps({"task_id": f"t{i}", "prompt": "x" * 50}) + "\n" for i in range(50))


def test_non_utf8_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(gzip.compress(ROWS.encode() + b'{"task_id": "\xff\xfe"}\n'))
    with pytest.raises(DecodeError, match=r"line 51: not UTF-8.*bad\.jsonl\.gz"):
        list(iter_rows(str(path)))
    csv = tmp_path / "bad.csv"
    csv.write_bytes(b"a,b\n1,2\n\xff,3\n")
    with pytest.raises(DecodeError, match=r"not UTF-8.*bad\.csv"):
        list(iter_rows(str(csv)))


@pytest.mark.parametrize("name,data", [
    ("cut.jsonl.gz", gzip.compress(ROWS.encode())[:200]),
    ("plain.jsonl.gz", ROWS.encode()),
    ("empty.jsonl.gz", b""),
    ("cut.parquet", b"PAR1\x00\x01garbage"),
])
def test_damaged_file_is_named(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SourceError, match=rf"url=.*{name}"):
        list(iter_rows(str(path)))
