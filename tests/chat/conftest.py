"""Conversation shards built from the embedded corpus, and the pipelines over them."""

from __future__ import annotations

import json

import pytest

from xtok_stream.chat.templates import CHATML, LLAMA3_STYLE

TEMPLATES = {"student": CHATML, "deepseek-v4": LLAMA3_STYLE, "mistral-v3": "mistral-common"}


@pytest.fixture(scope="session")
def chat_samples():
    from xtok_stream.chat.corpus import iter_conversations

    return list(iter_conversations(24, max_chars=400))


@pytest.fixture(scope="session")
def chat_shards(chat_samples, tmp_path_factory):
    """4 tar shards of 6 conversations; returns (shard paths, {key: messages})."""
    from xtok_stream.io.shards import write_shards

    out = tmp_path_factory.mktemp("chat-shards")
    infos = write_shards(chat_samples, str(out), samples_per_shard=6)
    return ([str(out / i.name) for i in infos],
            {s["__key__"]: json.loads(s["messages"]) for s in chat_samples})


def chat_config(shards, *, seq_len=192, teachers=("pkg:deepseek-v4", "pkg:mistral-v3"),
                **chat) -> dict:
    return {
        "source": {"urls": list(shards)},
        "student": {"tokenizer": "pkg:qwen2", "seq_len": seq_len},
        "teachers": [{"tokenizer": t, "max_len": 2 * seq_len} for t in teachers],
        "num_lanes": 2, "batch_size": 2, "shuffle": {"shards": True, "buffer": 3},
        "chat": {"templates": {k: v for k, v in TEMPLATES.items()
                               if k == "student" or f"pkg:{k}" in teachers}, **chat},
    }
