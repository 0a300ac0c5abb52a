"""Odd tar members (symlinks, hardlinks, names without an extension, duplicates) are refused
naming the member and the policy, or dropped and counted under ``odd_member: skip``; bad-data
policies are transport-only, so following the error's advice keeps the checkpoint valid."""

import io
import json
import tarfile

import pytest

from xtok_stream.config import BadDataConfig, load_config
from xtok_stream.errors import SourceError, StateError
from xtok_stream.loader import Loader
from xtok_stream.stages.read import DocumentReader
from xtok_stream.testing import check_resume

TEXTS = {f"d{i}": f"document number {i} " * 30 for i in range(6)}


def _add(tw, name, data=b"", kind=tarfile.REGTYPE, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.size = kind, link, len(data)
    tw.addfile(ti, io.BytesIO(data) if data else None)


def odd_shard(path, odd):
    """d0..d5 with one odd member placed among them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tw:
        for i, (key, text) in enumerate(TEXTS.items()):
            _add(tw, f"{key}.txt", text.encode())
            if i == 2:
                if odd == "symlink":
                    _add(tw, "d2.lnk", kind=tarfile.SYMTYPE, link="d1.txt")
                elif odd == "hardlink":
                    _add(tw, "d2.txt", kind=tarfile.LNKTYPE, link="d1.txt")
                elif odd == "no_extension":
                    _add(tw, "README", b"not a document")
                elif odd == "duplicate":
                    _add(tw, "d2.txt", b"a second d2 text")
    path.write_bytes(buf.getvalue())
    return str(path)


def reader(paths, **bad):
    return DocumentReader(paths, lane=0, num_lanes=1, seed=0, epochs=1, shuffle_shards=False,
                          bad_data=BadDataConfig(**bad))


ODD = ["symlink", "hardlink", "no_extension", "duplicate"]


@pytest.mark.parametrize("odd", ODD)
def test_odd_member_is_an_error_naming_member_and_policy(tmp_path, odd):
    r = reader([odd_shard(tmp_path / "a.tar", odd)])
    seen = []
    with pytest.raises(SourceError, match="odd_member: skip") as e:
        for d in r:
            seen.append(d.key)
    assert e.value.url.endswith("a.tar") and e.value.key
    assert seen == ["d0", "d1"]  # the error comes before the sample it sits in is handed out
    with pytest.raises(SourceError, match="odd_member"):  # again, not a silent end of shard
        next(r)


@pytest.mark.parametrize("odd", ODD)
def test_odd_member_is_skipped_and_counted(tmp_path, odd):
    path = odd_shard(tmp_path / "a.tar", odd)
    r = reader([path], odd_member="skip")
    docs = {d.key: d.text for d in r}
    assert docs == TEXTS  # duplicates keep the first member
    assert r.state_dict()["skipped"]["odd_member"] == 1
    check_resume(lambda: reader([path], odd_member="skip"))


def _tree(path, **bad):
    return {"source": {"urls": [path], "on_bad_data": bad},
            "student": {"tokenizer": "pkg:qwen2", "seq_len": 64}, "batch_size": 1,
            "num_lanes": 1}


def test_changing_a_policy_at_resume_is_allowed(tmp_path):
    path = odd_shard(tmp_path / "a.tar", "duplicate")
    first = Loader(load_config(_tree(path)))
    it = iter(first)
    next(it)
    state = json.loads(json.dumps(first.state_dict()))
    with pytest.raises(SourceError, match="odd_member: skip"):
        for _ in it:
            pass
    resumed = Loader(load_config(_tree(path, odd_member="skip", empty_document="skip",
                                       huge_document="split")))
    resumed.load_state_dict(state)  # the advice of the error above, then resume
    rest = [p for b in resumed for row in b["pieces"] for p in row]
    assert {p[0] for p in rest} >= {"d2", "d3", "d4", "d5"}
    assert resumed.metrics["skipped"]["odd_member"] == 1
    other = Loader(load_config(_tree(path, max_document_bytes=4096)))  # shapes windows: refused
    with pytest.raises(StateError, match="max_document_bytes"):
        other.load_state_dict(state)


def test_following_the_skip_advice_keeps_the_checkpoint(local_shards):
    shards, _ = local_shards
    tree = {"source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 64},
            "batch_size": 2, "num_lanes": 2}
    first = Loader(load_config(tree))
    next(iter(first))
    state = json.loads(json.dumps(first.state_dict()))
    for kind in ("corrupt_shard", "missing_field", "invalid_utf8", "empty_document"):
        tree["source"]["on_bad_data"] = {kind: "skip"}
        Loader(load_config(tree)).load_state_dict(state)  # accepted: no StateError
