"""``Document`` says where it came from in one clearly named field per shard kind: a tar
sample's ``byte_offset``, an Arrow row's ``row`` (the other is -1)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from xtok_stream.io.tar import iter_samples
from xtok_stream.stages.read import DocumentReader
from xtok_stream.stages.read_arrow import ArrowDocumentReader


def test_tar_documents_carry_the_sample_byte_offset(local_shards):
    shards, _ = local_shards
    r = DocumentReader(shards[:2], lane=0, num_lanes=1, seed=0, epochs=1, shuffle_shards=False)
    docs = list(r)
    offsets = {(url, s.key): s.offset for url in shards[:2] for s in iter_samples(url, {})}
    assert len(docs) == len(offsets)
    for d in docs:
        assert d.row == -1 and d.byte_offset == offsets[d.shard, d.key]
        assert d.position == [d.epoch, d.slot, d.byte_offset]
    assert len({d.byte_offset for d in docs if d.shard == shards[0]}) > 1


def test_arrow_documents_carry_the_row(tmp_path):
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"text": [f"row {i} text" for i in range(7)]}), path)
    r = ArrowDocumentReader([path], lane=0, num_lanes=1, seed=0, epochs=1, shuffle_shards=False,
                            text_field="text")
    docs = list(r)
    assert [d.row for d in docs] == list(range(7))
    assert [d.text for d in docs] == [f"row {i} text" for i in range(7)]
    assert all(d.byte_offset == -1 and d.position == [0, 0, d.row] for d in docs)
    assert r.fetch(docs[5].position).text == "row 5 text"
