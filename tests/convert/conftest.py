"""A dev-corpus-like fixture written in every input format ``xtok convert`` reads."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="session")
def docs():
    """~160 documents (English prose, Python code, multilingual text), ids with dots and
    slashes, lengths from ~100 chars to 6,000."""
    from xtok_stream.demo_corpus import iter_documents

    return [{"id": d["id"], "lang": d["lang"], "text": d["text"][:6000]}
            for d in iter_documents(limit=160)]


def write_hf_disk(folder: Path, rows: list[dict], n_files: int = 2) -> Path:
    """A ``datasets.save_to_disk`` folder, written with pyarrow only: Arrow *stream* files
    ``data-0000i-of-0000n.arrow`` + ``state.json`` + ``dataset_info.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    per = -(-len(rows) // n_files)
    names = []
    for i in range(n_files):
        name = f"data-{i:05d}-of-{n_files:05d}.arrow"
        part = table.slice(i * per, per)
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            for batch in part.to_batches(max_chunksize=17):
                w.write_batch(batch)
        names.append(name)
    (folder / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": n} for n in names], "_fingerprint": "0" * 16,
        "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
        "_output_all_columns": False, "_split": None}))
    (folder / "dataset_info.json").write_text(json.dumps({
        "features": {k: {"dtype": "string", "_type": "Value"} for k in table.column_names}}))
    return folder


@pytest.fixture(scope="session")
def inputs(docs, tmp_path_factory) -> dict[str, Path]:
    """The same records as parquet (3 row groups), jsonl, jsonl.gz, jsonl.zst, Arrow IPC file,
    HF save_to_disk folder and HF DatasetDict folder (split "train")."""
    import zstandard

    root = tmp_path_factory.mktemp("inputs")
    table = pa.Table.from_pylist(docs)
    pq.write_table(table, root / "corpus.parquet", row_group_size=60)
    lines = "".join(json.dumps(d) + "\n" + ("\n" if i % 50 == 7 else "")  # blank lines too
                    for i, d in enumerate(docs)).encode()
    (root / "corpus.jsonl").write_bytes(lines)
    (root / "corpus.jsonl.gz").write_bytes(gzip.compress(lines, mtime=0))
    (root / "corpus.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    feather.write_feather(table, root / "corpus.arrow", chunksize=40)
    write_hf_disk(root / "hf", docs)
    dd = root / "hf_dict"
    write_hf_disk(dd / "train", docs)
    write_hf_disk(dd / "test", docs[:10], n_files=1)
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    return {"parquet": root / "corpus.parquet", "jsonl": root / "corpus.jsonl",
            "jsonl.gz": root / "corpus.jsonl.gz", "jsonl.zst": root / "corpus.jsonl.zst",
            "arrow": root / "corpus.arrow", "hf": root / "hf", "hf_dict": dd}
