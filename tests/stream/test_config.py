import pytest

from xtok_stream.config import load_config
from xtok_stream.errors import ConfigError

BASE = {"source": {"urls": "shards/"}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 128}}


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("source:\n  urls: s3://b/x-{0..3}.tar\nstudent:\n  tokenizer: pkg:qwen2\n")
    cfg = load_config(p, ["student.seq_len=256", "epochs=null", "source.storage_options.anon=true"])
    assert cfg.source.urls == ["s3://b/x-{0..3}.tar"]
    assert cfg.student.seq_len == 256 and cfg.epochs is None
    assert cfg.source.storage_options == {"anon": True}
    assert cfg.teachers == []


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="student.seqlen"):
        load_config({**BASE, "student": {"tokenizer": "x", "seqlen": 3}})


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(BASE, ["no_equals_sign"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_fingerprint_shape_changes_with_stream_fields():
    a = load_config(BASE)
    b = load_config(BASE, ["seed=1"])
    c = load_config(BASE, ["num_workers=3"])  # topology does not shape the stream
    assert a.stream_shape() != b.stream_shape()
    assert a.stream_shape() == c.stream_shape()
