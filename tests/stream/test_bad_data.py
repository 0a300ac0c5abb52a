"""Bad data under each policy: error names shard, member and offset; skip counts it in the state;
huge documents split into bounded windows that still tile the text."""

import pytest

from tests.helpers import assert_exactly_once
from xtok_stream.config import BadDataConfig
from xtok_stream.errors import DecodeError, SourceError
from xtok_stream.io.shards import encode_shard
from xtok_stream.stages.pack import Packer
from xtok_stream.stages.read import DocumentReader
from xtok_stream.testing import check_resume


def reader(paths, **bad):
    return DocumentReader(paths, lane=0, num_lanes=1, seed=0, epochs=1, shuffle_shards=False,
                          bad_data=BadDataConfig(**bad))


def shard(tmp_path, name, samples):
    data, _ = encode_shard(samples)
    (tmp_path / name).write_bytes(data)
    return str(tmp_path / name), data


GOOD = [{"__key__": f"g{i}", "txt": f"good document {i} " * 50} for i in range(6)]


@pytest.mark.parametrize("cut,kept", [(1000, []), (1600, ["g3"])])
def test_corrupt_shard_error_and_skip(tmp_path, cut, kept):
    a, _ = shard(tmp_path, "a.tar", GOOD[:3])
    b, data = shard(tmp_path, "b.tar", GOOD[3:5])
    # 1000: inside g3's data (512..1312); 1600: g3 whole, g4's header (at 1536) cut
    (tmp_path / "b.tar").write_bytes(data[:cut])
    c, _ = shard(tmp_path, "c.tar", GOOD[5:])
    r = reader([a, b, c])
    seen = []
    with pytest.raises(SourceError) as e:
        for d in r:
            seen.append(d.key)
    assert seen == ["g0", "g1", "g2", *kept]
    assert "b.tar" in str(e.value) and "byte" in str(e.value)
    if kept:
        assert "after member 'g3.txt'" in str(e.value)
    with pytest.raises(SourceError):  # the error is not consumed: the cursor stays on it
        next(r)
    r = reader([a, b, c], corrupt_shard="skip")
    assert [d.key for d in r] == ["g0", "g1", "g2", *kept, "g5"]
    assert r.state_dict()["skipped"]["corrupt_shard"] == 1


@pytest.mark.parametrize("kind,sample,match", [
    ("missing_field", {"__key__": "bad", "json": b"{}"}, "has no 'txt' member"),
    ("invalid_utf8", {"__key__": "bad", "txt": b"ok \xff\xfe"}, "invalid UTF-8 at byte 3"),
    ("empty_document", {"__key__": "bad", "txt": b""}, "empty document"),
])
def test_sample_policies(tmp_path, kind, sample, match):
    path, _ = shard(tmp_path, "s.tar", [GOOD[0], sample, GOOD[1]])
    with pytest.raises(DecodeError, match=match) as e:
        list(reader([path]))
    assert "s.tar" in str(e.value) and "key=bad" in str(e.value) and "at byte 1536" in str(e.value)
    r = reader([path], **{kind: "skip"})
    assert [d.key for d in r] == ["g0", "g1"]
    assert r.state_dict()["skipped"][kind] == 1
    assert sum(r.state_dict()["skipped"].values()) == 1


def huge_text():
    lines = [f"line {i}: ünïcödé 日本語 text, with spaces and more words" for i in range(2000)]
    return "\n".join(lines) + "\nno newline at the very end " + "x" * 300


def test_huge_document_error_skip(tmp_path):
    path, _ = shard(tmp_path, "h.tar", [GOOD[0], {"__key__": "huge", "txt": huge_text()}, GOOD[1]])
    with pytest.raises(DecodeError, match="exceeds source.on_bad_data.max_document_bytes=4,096"):
        list(reader([path], max_document_bytes=4096))
    r = reader([path], max_document_bytes=4096, huge_document="skip")
    assert [d.key for d in r] == ["g0", "g1"] and r.skipped["huge_document"] == 1


def test_huge_document_split_tiles_the_text_in_bounded_windows(tmp_path, qwen2):
    text = huge_text()
    path, _ = shard(tmp_path, "h.tar", [GOOD[0], {"__key__": "huge", "txt": text}, GOOD[1]])
    docs = list(reader([path], max_document_bytes=4096, huge_document="split"))
    parts = [d for d in docs if d.key == "huge"]
    assert len(parts) > 20 and all(len(p.text.encode()) <= 4096 for p in parts)
    assert "".join(p.text for p in parts) == text
    assert [p.char_base for p in parts] == [sum(len(q.text) for q in parts[:i]) for i in range(len(parts))]
    assert [p.last_part for p in parts] == [False] * (len(parts) - 1) + [True]

    def packer():
        return Packer(reader([path], max_document_bytes=4096, huge_document="split"),
                      tokenizer="pkg:qwen2", seq_len=700)

    seqs = list(packer())
    texts = {"g0": GOOD[0]["txt"], "g1": GOOD[1]["txt"], "huge": text}
    assert_exactly_once([p for s in seqs for p in s.ledger()], texts)
    eos = qwen2.eos_token_id
    huge_ids = [i for s in seqs for p in s.pieces if p.key == "huge"
                for i in s.input_ids[p.token_start:p.token_end]]
    assert huge_ids.count(eos) == 1 and huge_ids[-1] == eos  # one EOS, after the last part
    check_resume(packer, every=3)


def test_huge_document_windows_pass_a_shuffle_buffer_in_order(tmp_path):
    from xtok_stream.stages.shuffle import Shuffler

    text = huge_text()
    docs = [GOOD[0], GOOD[1], {"__key__": "huge", "txt": text}, *GOOD[2:]]
    path, _ = shard(tmp_path, "h.tar", docs)

    def shuffled():
        r = reader([path], max_document_bytes=4096, huge_document="split")
        return Shuffler(r, size=3, seed=1, lane=0)

    out = list(shuffled())
    parts = [d for d in out if d.key == "huge"]
    assert "".join(p.text for p in parts) == text  # every window, in order
    assert sorted(d.key for d in out if d.key != "huge") == sorted(d["__key__"] for d in GOOD)
    check_resume(shuffled)

    def packer():
        return Packer(shuffled(), tokenizer="pkg:qwen2", seq_len=500)

    texts = {d["__key__"]: d["txt"] for d in docs}
    assert_exactly_once([p for s in packer() for p in s.ledger()], texts)
    check_resume(packer, every=4)


def test_corrupt_header_mid_shard_is_not_taken_for_the_end(tmp_path):
    """Streaming tarfile stops quietly at a header that fails its checksum: the reader must
    notice the data after it and apply the corrupt-shard policy."""
    _, data = shard(tmp_path, "x.tar", GOOD[:5])
    bad = bytearray(data)
    bad[3 * 1536 + 100] ^= 0xFF  # inside the 4th member's header (each member is 1,536 bytes)
    (tmp_path / "c.tar").write_bytes(bytes(bad))
    seen = []
    with pytest.raises(SourceError, match="corrupt header"):
        for d in reader([str(tmp_path / "c.tar")]):
            seen.append(d.key)
    assert seen == ["g0", "g1", "g2"]
    r = reader([str(tmp_path / "c.tar")], corrupt_shard="skip")
    assert [d.key for d in r] == ["g0", "g1", "g2"] and r.skipped["corrupt_shard"] == 1


def test_truncated_huge_member_is_a_corrupt_shard_not_a_loop(tmp_path):
    _, data = shard(tmp_path, "x.tar", [GOOD[0], {"__key__": "huge", "txt": huge_text()}])
    (tmp_path / "t.tar").write_bytes(data[:20000])  # cut inside the huge member's data
    opts = {"max_document_bytes": 4096, "huge_document": "split"}
    with pytest.raises(SourceError, match="truncated tar"):
        list(reader([str(tmp_path / "t.tar")], **opts))
    r = reader([str(tmp_path / "t.tar")], corrupt_shard="skip", **opts)
    assert [d.key for d in r] == ["g0"] and r.skipped["corrupt_shard"] == 1


def test_invalid_utf8_in_a_later_window_skips_the_whole_document(tmp_path):
    text = huge_text().encode() + b"\xff tail"
    path, _ = shard(tmp_path, "u.tar", [{"__key__": "huge", "txt": text}, GOOD[0]])
    opts = {"max_document_bytes": 4096, "huge_document": "split"}
    with pytest.raises(DecodeError, match="invalid UTF-8"):
        next(reader([path], **opts))
    r = reader([path], invalid_utf8="skip", **opts)
    assert [d.key for d in r] == ["g0"]  # no window of the bad document went out
    assert r.skipped["invalid_utf8"] == 1
