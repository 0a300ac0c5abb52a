"""A small conversation set built from the embedded demo corpus (no network, deterministic).

Each conversation quotes slices of one demo document: a user turn asks about a slice, the
assistant answers with the next slice, for 1-3 rounds; every third conversation (with
``system=True``) opens with a system prompt, and some user turns hold multi-byte text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from ..demo_corpus import iter_documents
from ..io.shards import safe_key

_ASK = ["Explain this:\n", "What does this do?\n", "Summarise:\n", "Continue the text:\n"]


def iter_conversations(limit: int = 64, *, system: bool = False,
                       max_chars: int = 600) -> Iterator[dict]:
    """``{"__key__", "messages"}`` samples (``messages`` as JSON text, as in a tar shard)."""
    for n, doc in enumerate(iter_documents(limit=limit)):
        text = doc["text"]
        msgs = []
        if system and n % 3 == 0:
            msgs.append({"role": "system", "content": f"You are a helpful {doc['kind']} assistant."})
        rounds = 1 + n % 3
        step = max(1, min(max_chars, len(text)) // (2 * rounds))
        for i in range(rounds):
            q = text[2 * i * step : (2 * i + 1) * step].strip() or "Hello"
            a = text[(2 * i + 1) * step : (2 * i + 2) * step].strip() or "Hi."
            msgs.append({"role": "user", "content": _ASK[(n + i) % len(_ASK)] + q})
            msgs.append({"role": "assistant", "content": a})
        yield {"__key__": safe_key(f"chat-{doc['id']}"), "messages": json.dumps(msgs, ensure_ascii=False)}


def build_chat_shards(out, samples_per_shard: int = 16, limit: int = 256) -> list[str]:
    """Write the demo conversations as tar shards (member ``messages``) under ``out``; reused
    when its manifest exists."""
    from pathlib import Path

    from ..io.shards import manifest, write_shards

    out = Path(out)
    man_path = out / "manifest.json"
    if man_path.exists():
        return [str(out / s["name"]) for s in json.loads(man_path.read_text())["shards"]]
    shards = write_shards(iter_conversations(limit), str(out), samples_per_shard=samples_per_shard,
                          prefix="chat")
    man = manifest(shards, sources=["python stdlib conversations"],
                   config={"samples_per_shard": samples_per_shard, "limit": limit})
    man_path.write_text(json.dumps(man, indent=1))
    return [str(out / s.name) for s in shards]
