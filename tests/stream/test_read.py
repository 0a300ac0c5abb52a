import io
import tarfile

import pytest

from xtok_stream.errors import DecodeError, SourceError
from xtok_stream.io.shards import encode_shard, safe_key, write_shards
from xtok_stream.io.tar import iter_samples
from xtok_stream.stages.read import DocumentReader
from xtok_stream.testing import check_resume


def reader(shards, lane=0, lanes=1, epochs=1, **kw):
    return DocumentReader(shards, lane=lane, num_lanes=lanes, seed=5, epochs=epochs, **kw)


def test_reads_every_document_once_per_epoch_in_lane_order(local_shards):
    shards, texts = local_shards
    got = []
    for lane in range(3):
        got += [(d.key, d.text) for d in reader(shards, lane=lane, lanes=3)]
    assert sorted(got) == sorted(texts.items())
    two = [d.key for d in reader(shards, epochs=2)]
    assert sorted(two) == sorted(list(texts) * 2)
    assert two[: len(texts)] != two[len(texts):]  # the shard order is reshuffled per epoch


def test_offsets_refetch_the_same_document(local_shards):
    shards, _ = local_shards
    r = reader(shards)
    docs = [next(r) for _ in range(25)]
    for d in docs[::4]:
        again = r.fetch(d.position)
        assert (again.key, again.text, again.shard) == (d.key, d.text, d.shard)


def test_resume_at_every_step_across_epochs(local_shards):
    shards, _ = local_shards
    check_resume(lambda: reader(shards[:3], lane=1, lanes=2, epochs=3), max_state_bytes=400)


def test_offsets_survive_long_keys_with_pax_headers(tmp_path):
    docs = [{"__key__": safe_key("x" * 150 + f".{i}"), "txt": f"doc {i} ü"} for i in range(5)]
    write_shards(docs, str(tmp_path), samples_per_shard=5)
    samples = list(iter_samples(str(tmp_path / "shard-000000.tar"), {}))
    assert [s.files["txt"].decode() for s in samples] == [f"doc {i} ü" for i in range(5)]
    third = list(iter_samples(str(tmp_path / "shard-000000.tar"), {}, samples[2].offset))
    assert [s.key for s in third] == [s.key for s in samples[2:]]


def test_same_samples_give_byte_identical_shards():
    docs = [{"__key__": f"k{i}", "txt": "t" * i} for i in range(20)]
    assert encode_shard(docs)[0] == encode_shard(list(docs))[0]


def test_missing_shard_names_url(tmp_path):
    missing = str(tmp_path / "nope.tar")
    with pytest.raises(SourceError, match="nope.tar"):
        next(reader([missing]))


def test_non_utf8_and_missing_field_name_shard_key_and_field(tmp_path):
    data, _ = encode_shard([{"__key__": "good", "txt": "ok"}, {"__key__": "bad", "txt": b"\xff\xfeoops"}])
    (tmp_path / "a.tar").write_bytes(data)
    r = reader([str(tmp_path / "a.tar")])
    assert next(r).text == "ok"
    with pytest.raises(DecodeError) as e:
        next(r)
    msg = str(e.value)
    assert "a.tar" in msg and "key=bad" in msg and "'txt'" in msg and "UTF-8" in msg
    with pytest.raises(DecodeError, match="no 'text' member.*has: txt"):
        next(reader([str(tmp_path / "a.tar")], text_field="text"))


def test_truncated_shard_names_url(tmp_path):
    data, _ = encode_shard([{"__key__": f"k{i}", "txt": "x" * 3000} for i in range(4)])
    (tmp_path / "t.tar").write_bytes(data[:5000])
    with pytest.raises(SourceError, match="t.tar"):
        list(reader([str(tmp_path / "t.tar")]))


def test_member_names_group_by_key(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, payload in [("a/doc1.txt", b"one"), ("a/doc1.json", b"{}"), ("a/doc2.txt", b"two")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    (tmp_path / "g.tar").write_bytes(buf.getvalue())
    docs = list(reader([str(tmp_path / "g.tar")]))
    assert [(d.key, d.text) for d in docs] == [("a/doc1", "one"), ("a/doc2", "two")]


def test_part_on_an_ordinary_member_is_a_state_error(local_shards):
    """A state with ``part > 0`` on a member that is not read in windows used to repeat that
    document forever (``epochs: 1`` never ended); now it is refused naming the field."""
    import itertools

    from xtok_stream.errors import StateError

    shards, _ = local_shards
    r = reader(shards[:2])
    next(r)
    state = dict(r.state_dict(), part=5, part_chars=5)
    again = reader(shards[:2])
    with pytest.raises(StateError, match=r"^part: "):  # refused at load or at the first read
        again.load_state_dict(state)
        list(itertools.islice(again, 50))
