"""Parquet / Arrow IPC inputs built from the ``small_docs`` corpus: 8 files of 10 rows each."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

ROWS = 10


def _tables(small_docs):
    texts = [d["txt"] for d in small_docs]
    return [pa.table({"id": [f"doc{i}" for i in range(k, k + ROWS)], "text": texts[k:k + ROWS]})
            for k in range(0, len(texts), ROWS)]


@pytest.fixture(scope="session")
def arrow_files(small_docs, tmp_path_factory):
    """8 files (6 Parquet with row groups of 4 rows, 2 Arrow IPC with batches of 3 rows);
    returns (paths, {key: text}) with the keys the Arrow reader (and ``xtok convert``) give."""
    out = tmp_path_factory.mktemp("arrow")
    paths, texts = [], {}
    for i, t in enumerate(_tables(small_docs)):
        if i in (2, 5):
            p = out / f"part-{i:03d}.arrow"
            feather.write_feather(t, p, compression="uncompressed", chunksize=3)
        else:
            p = out / f"part-{i:03d}.parquet"
            pq.write_table(t, p, row_group_size=4)
        paths.append(str(p))
        for r, text in enumerate(t.column("text").to_pylist()):
            texts[f"part-{i:03d}-{r:08d}"] = text
    return paths, texts
