"""Chat mode vs text mode: student tokens/s with two teachers on the same conversations.

The demo conversations (``xtok_stream.chat.corpus``, ``--convs`` of them) are written twice as
local tar shards: as ``messages`` (chat mode: every model renders its own template, contents
aligned per message, template runs paired by role, loss masks) and as ``txt`` holding the
student's rendering of each conversation (text mode: the same student tokens, each teacher
tokenizes that text and aligns the whole sequence). Student ``pkg:qwen2`` (ChatML); teachers
``pkg:deepseek-v4`` (Llama-3 layout) and ``pkg:mistral-v3`` (mistral-common in chat mode).
``build_consumer`` is iterated in-process, single threaded, after one warm-up batch; ``--repeat``
rounds interleave the modes; medians are reported.

    python benchmarks/bench_chat.py [--convs 256] [--seq-len 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

TEACHERS = ["pkg:deepseek-v4", "pkg:mistral-v3"]


def configs(chat_dir: str, text_dir: str, seq_len: int):
    from xtok_stream.chat.templates import DEMO
    from xtok_stream.config import load_config

    base = {"student": {"tokenizer": "pkg:qwen2", "seq_len": seq_len}, "num_lanes": 1,
            "batch_size": 4, "shuffle": {"shards": False},
            "teachers": [{"tokenizer": t} for t in TEACHERS]}
    chat = load_config({**base, "source": {"urls": chat_dir + "/"}, "chat": {"templates": {
        "student": DEMO["pkg:qwen2"], **{t[4:]: DEMO[t] for t in TEACHERS}}}})
    text = load_config({**base, "source": {"urls": text_dir + "/"}})
    return {"chat": chat, "text": text}


def run(config) -> tuple[float, int]:
    from xtok_stream.io.urls import expand_urls
    from xtok_stream.pipeline import build_consumer

    shards = expand_urls(config.source.urls)
    consumer = build_consumer(config, shards)
    next(consumer)  # warm-up: tokenizers, numba, first shard
    tokens, t0 = 0, time.perf_counter()
    for batch in consumer:
        tokens += int(batch["input_lengths"].sum())
    return tokens / (time.perf_counter() - t0), tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--convs", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from xtok_stream.chat.corpus import iter_conversations
    from xtok_stream.chat.render import renderer
    from xtok_stream.chat.templates import DEMO
    from xtok_stream.io.shards import write_shards

    convs = list(iter_conversations(args.convs))
    student = renderer("pkg:qwen2", DEMO["pkg:qwen2"], "student")
    texts = [{"__key__": c["__key__"], "txt": student.render(
        tuple((m["role"], m["content"]) for m in json.loads(c["messages"]))).text} for c in convs]
    with tempfile.TemporaryDirectory() as tmp:
        chat_dir, text_dir = f"{tmp}/chat", f"{tmp}/text"
        write_shards(convs, chat_dir, samples_per_shard=32)
        write_shards(texts, text_dir, samples_per_shard=32)
        cfgs = configs(chat_dir, text_dir, args.seq_len)
        rates = {k: [] for k in cfgs}
        tokens = {}
        for _ in range(args.repeat):
            for mode, cfg in cfgs.items():
                r, n = run(cfg)
                rates[mode].append(r)
                tokens[mode] = n
    med = {k: statistics.median(v) for k, v in rates.items()}
    for mode in cfgs:
        print(f"{mode:5s}: {med[mode]:10,.0f} student tokens/s (median of {args.repeat}; "
              f"runs {', '.join(f'{x:,.0f}' for x in rates[mode])}; {tokens[mode]:,} tokens timed)")
    print(f"chat / text: {med['chat'] / med['text']:.2f}x")


if __name__ == "__main__":
    main()
