"""Config values that would run nothing, crash torch or blow up memory are refused up front,
naming the key."""

import pytest

from xtok_stream.config import load_config
from xtok_stream.errors import ConfigError

BASE = {"source": {"urls": "shards/"}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 128}}


@pytest.mark.parametrize("key,value", [("epochs", 0), ("epochs", -1), ("prefetch_factor", 0),
                                       ("prefetch_factor", -2)])
def test_values_that_run_nothing_or_crash_torch_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config({**BASE, key: value})
    with pytest.raises(ConfigError, match=key):
        load_config(BASE, [f"{key}={value}"])


def test_epochs_null_and_positive_still_work():
    assert load_config(BASE, ["epochs=null"]).epochs is None
    assert load_config(BASE, ["epochs=3", "prefetch_factor=1"]).epochs == 3


def test_yaml_aliases_are_refused(tmp_path):
    bomb = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                     + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                        for p, c in zip("abcdefgh", "bcdefghi")])
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb + "\nsource:\n  urls: shards/\nstudent:\n  tokenizer: pkg:qwen2\n")
    with pytest.raises(ConfigError, match=r"bomb.yaml.*alias \*a refused"):
        load_config(path)
    with pytest.raises(ConfigError, match="alias"):
        load_config(BASE, ["seed=*x"])


def test_anchors_without_aliases_still_load(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("source:\n  urls: &u shards/\nstudent:\n  tokenizer: pkg:qwen2\n")
    assert load_config(path).source.urls == ["shards/"]
