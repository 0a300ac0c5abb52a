"""Real shards whose first row holds exact chunks, a non-exact chunk around a special token
parsed from literal text (Mistral reads the literal ``<s>`` as its BOS, Qwen2 as text: the same
text, so one chunk, but not exact) and unaligned student tokens (Mistral's ``max_len`` cuts
its side short: a truncated tail), with two teachers of different families; and a headless
Chromium, installed when absent."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from xtok_stream.config import load_config
from xtok_stream.loader import Loader

CRAFTED = ("def f(x):\n    return x <s> caf\u00e9 na\u00efve.\n"
           "a b <unk> c d\n")


def tree(shards, **over):
    t = {"source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 192},
         # Mistral cut short, so the row also has unaligned student tokens (a truncated tail)
         "teachers": [{"tokenizer": "pkg:mistral-v3", "max_len": 150},
                      {"tokenizer": "pkg:deepseek-v4"}],
         "batch_size": 2, "num_lanes": 2, "seed": 0, "shuffle": {"shards": False}}
    t.update(over)
    return t


@pytest.fixture(scope="session")
def inspect_shards(small_docs, tmp_path_factory):
    from xtok_stream.io.shards import manifest, write_shards

    out = tmp_path_factory.mktemp("inspect-shards")
    docs = [{"__key__": "crafted", "txt": CRAFTED}] + small_docs[:23]
    infos = write_shards(docs, str(out), samples_per_shard=6)
    import json

    (out / "manifest.json").write_text(json.dumps(manifest(infos)))
    return [str(out / i.name) for i in infos]


@pytest.fixture(scope="session")
def inspect_config(inspect_shards):
    return load_config(tree(inspect_shards))


@pytest.fixture(scope="session")
def first_batch(inspect_config):
    return next(iter(Loader(inspect_config)))


def _install_chromium() -> str | None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode != 0:
            return None
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium():
    """Debian's headless Chromium; apt-get installs it when absent (as root), else skip."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        try:
            exe = _install_chromium()
        except (OSError, subprocess.TimeoutExpired):
            exe = None
    if exe is None:
        pytest.skip("no chromium and it cannot be installed here (needs root and apt-get: "
                    "`apt-get install chromium`)")
    return exe
