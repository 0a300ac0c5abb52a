"""Unlucky inputs to ``xtok convert``: every one is converted correctly or refused with a typed
error naming the input (and row/line), never a traceback or a silently odd shard."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xtok_stream.convert import ConvertConfig, convert
from xtok_stream.errors import ConfigError, SourceError
from xtok_stream.io.records_in import iter_lines
from xtok_stream.io.shards import safe_key
from xtok_stream.io.tar import iter_samples


def run(inputs, out, **cfg):
    return convert([str(i) for i in inputs], str(out), ConvertConfig(**cfg), workers=1,
                   progress=False)


def test_id_keys_are_tar_safe_and_reversible(tmp_path):
    ids = ["/abs/path", "dir/", "a//b", "../../x", "./y", "plain", "guide.rst#3"]
    pq.write_table(pa.table({"id": ids, "text": [f"doc {i}" for i in range(len(ids))]}),
                   tmp_path / "in.parquet")
    run([tmp_path / "in.parquet"], tmp_path / "out", id_field="id")
    shard = tmp_path / "out" / "shard-000000.tar"
    with tarfile.open(shard) as t:
        names = t.getnames()
        t.extractall(tmp_path / "x", filter="data")  # refuses absolute / outside names
    assert not any(n.startswith("/") or "//" in n or "/." in n for n in names), names
    got = [s for s in iter_samples(str(shard), {})]
    assert [unquote(s.key) for s in got] == ids
    assert [s.files["txt"].decode() for s in got] == [f"doc {i}" for i in range(len(ids))]


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1))
def test_safe_key_property(doc_id):
    key = safe_key(doc_id)
    assert unquote(key) == doc_id
    assert "." not in key and not key.startswith("/") and not key.endswith("/")
    assert "//" not in key


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_empty_id_is_refused_naming_the_row(tmp_path, fmt):
    rows = [{"id": "a", "text": "one"}, {"id": "", "text": "two"}]
    if fmt == "jsonl":
        path = tmp_path / "in.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        where = "line 2"
    else:
        path = tmp_path / "in.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        where = "row 1"
    with pytest.raises(SourceError, match=f"{where}: 'id' is empty.*--id-field.*in\\.{fmt}"):
        run([path], tmp_path / "out", id_field="id")


def test_lone_surrogate_names_the_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "bad \\ud800 here"}\n')
    with pytest.raises(SourceError, match=r"line 2: 'text' holds a lone surrogate.*s\.jsonl"):
        run([path], tmp_path / "out")
    path.write_text('{"id": "x\\udfff", "text": "t"}\n')
    with pytest.raises(SourceError, match=r"line 1: .id. holds a lone surrogate"):
        run([path], tmp_path / "out2", id_field="id")


def _corrupt_inputs(tmp_path, docs):
    good = "".join(json.dumps({"text": d["text"]}) + "\n" for d in docs[:40]).encode()
    table = pa.Table.from_pylist([{"text": d["text"]} for d in docs[:40]])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    cases = {
        "garbage.parquet": b"PAR1" + b"\x00garbage" * 50,
        "cut.parquet": buf.getvalue()[: len(buf.getvalue()) // 2],
        "garbage.arrow": b"ARROW1\x00\x00" + b"junk" * 40,
        "notgzip.jsonl.gz": good,
        "cut.jsonl.gz": gzip.compress(good)[:300],
        "junk.jsonl.zst": b"\x28\xb5\x2f\xfd" + b"junk" * 30,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    return list(cases)


@pytest.mark.parametrize("min_chars", [0, 5])  # metadata-only planning, and a full scan
def test_corrupt_inputs_name_the_file(tmp_path, docs, min_chars):
    for name in _corrupt_inputs(tmp_path, docs):
        with pytest.raises(SourceError, match=rf"cannot read .*url=.*{name}") as e:
            run([tmp_path / name], tmp_path / f"out-{name}", min_chars=min_chars)
        assert "Traceback" not in str(e.value)


def test_unknown_protocol_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="Protocol not known: nosuch.*url=nosuch://"):
        run(["nosuch://b/x.jsonl"], tmp_path / "out")
    with pytest.raises(SourceError, match="gcsfs.*url=gs://"):
        run(["gs://bucket/x.jsonl"], tmp_path / "out")


def test_stream_open_of_unknown_protocol(tmp_path):
    """The loader's resilient reader: a typed error at once, and no AttributeError on a
    half-built file when it is collected."""
    code = ("from xtok_stream.io.retry import open_resilient\n"
            "for u in ('gs://b/x.tar', 'nosuch://b/x.tar'):\n"
            "    try:\n        open_resilient(u, {})\n"
            "    except Exception as e:\n        print(type(e).__name__, e)\n"
            "import gc; gc.collect()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.count("SourceError cannot open this URL") == 2, res.stdout
    assert "gcsfs" in res.stdout and "_f" not in res.stderr, res.stderr


def test_long_jsonl_line_is_bounded(tmp_path):
    path = tmp_path / "long.jsonl.gz"
    big = "x" * 3_000_000
    path.write_bytes(gzip.compress((json.dumps({"text": "a"}) + "\n"
                                    + json.dumps({"text": big}) + "\n").encode()))
    with pytest.raises(SourceError, match=r"line 2: a record of more than 1,000,000 bytes.*"
                                          r"--max-record-mb.*long\.jsonl\.gz"):
        run([path], tmp_path / "out", max_record_mb=1, min_chars=1)
    with pytest.raises(SourceError, match="--max-record-mb"):  # also without a planning scan
        run([path], tmp_path / "out2", max_record_mb=1)
    s = run([path], tmp_path / "out3", max_record_mb=4)
    assert s.samples == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=30),
       st.booleans(), st.integers(1, 17))
def test_iter_lines_property(lines, trailing, chunk):
    data = b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    want = [part + b"\n" for part in data.split(b"\n")]
    want[-1] = want[-1][:-1]  # the last part has no newline (empty when data ends with one)
    assert list(iter_lines(io.BytesIO(data), chunk)) == [w for w in want if w]


def test_prefix_must_stay_under_out(tmp_path, docs):
    for bad in ("../../x", "a/b", "", ".hidden", "/abs"):
        with pytest.raises(ConfigError, match="--prefix"):
            ConvertConfig(prefix=bad)
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "t"}) + "\n")
    res = subprocess.run([sys.executable, "-m", "xtok_stream", "convert",
                          str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o" / "p"),
                          "--prefix", "../../x", "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "--prefix" in res.stderr and "Traceback" not in res.stderr
    assert not list(tmp_path.glob("x-*.tar")) and not list(tmp_path.glob("*/x-*.tar"))


def test_misshapen_done_marker_is_rewritten(inputs, tmp_path):
    out = tmp_path / "out"
    run([inputs["parquet"]], out, samples_per_shard=40)
    want = {p.name: p.read_bytes() for p in out.glob("*.tar")}
    (out / "_xtok/done/shard-000001.tar.json").write_text("[1, 2]")
    (out / "_xtok/done/shard-000002.tar.json").write_text(json.dumps(
        {"name": "shard-000002.tar", "samples": "40", "bytes": None, "sha256": 1, "plan_id": 2}))
    s = run([inputs["parquet"]], out, samples_per_shard=40)
    assert (s.written, s.skipped) == (2, 2)
    assert {p.name: p.read_bytes() for p in out.glob("*.tar")} == want


def test_failed_write_leaves_no_temp_file(tmp_path):
    """A real write failure (the file-size limit, EFBIG - as ENOSPC would be): SourceError
    naming the URL and errno, and the temporary file is gone."""
    code = ("import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            "from xtok_stream.io.shards import put_atomic\n"
            f"put_atomic({str(tmp_path / 'big.tar')!r}, b'x' * 100_000)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode != 0
    assert "SourceError: cannot write 100,000 bytes: EFBIG" in res.stderr, res.stderr
    assert "big.tar" in res.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []
