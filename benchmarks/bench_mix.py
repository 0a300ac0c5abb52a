"""Mixture benchmark: a 3-source mixture (``sources:``, weights 0.5/0.3/0.2) vs the same documents
as one source, read + pack through the Loader (0 workers, one process, single-threaded), and the
size of a loader state for 3 sources x 1,024 lanes.

The corpus's documents are dealt round-robin into three tar corpora (so the sources have the same
text statistics and the difference measured is the mixer's), and the single source reads all
three sets of shards. Rounds interleave the two variants; medians are reported.

    python benchmarks/bench_mix.py                       # dev corpus, 3,000 documents
    python benchmarks/bench_mix.py --builtin --repeat 1  # no corpus needed (smoke test)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import single_thread

single_thread()

import argparse
import datetime
import json
import tempfile
import time

from common import DEFAULT_CORPUS, machine_info, median

from xtok_stream.config import load_config
from xtok_stream.io.shards import safe_key, write_shards
from xtok_stream.loader import Loader
from xtok_stream.pipeline import build_lane
from xtok_stream.stages.mix import mix_shards

WEIGHTS = {"web": 0.5, "code": 0.3, "books": 0.2}


def documents(args) -> list[dict]:
    if args.builtin:
        from xtok_stream.demo_corpus import iter_documents

        docs = [{"id": d["id"], "text": d["text"][:3000]} for d in iter_documents(limit=args.limit_docs)]
    else:
        import pyarrow.parquet as pq

        docs = pq.read_table(args.corpus, columns=["id", "text"]).to_pylist()[: args.limit_docs]
    return [{"__key__": safe_key(f"{i}-{d['id']}"), "txt": d["text"]} for i, d in enumerate(docs)]


def configs(out: Path, docs: list[dict], lanes: int, seq_len: int):
    urls = {}
    for k, name in enumerate(WEIGHTS):
        part = docs[k::3]
        infos = write_shards(part, str(out / name), samples_per_shard=max(1, len(part) // (2 * lanes)))
        urls[name] = [str(out / name / i.name) for i in infos]
    common = {"student": {"tokenizer": "pkg:qwen2", "seq_len": seq_len}, "num_lanes": lanes,
              "batch_size": 8, "seed": 1, "shuffle": {"buffer": 16}}
    one = load_config(dict(common, source={"urls": [u for v in urls.values() for u in v]}))
    mix = load_config(dict(common, sources=[{"name": n, "urls": urls[n], "weight": w}
                                            for n, w in WEIGHTS.items()]))
    return one, mix


def run(config) -> tuple[float, int]:
    loader = Loader(config)
    t0 = time.perf_counter()
    tokens = sum(int(b["input_lengths"].sum()) for b in loader)
    return time.perf_counter() - t0, tokens


def state_size(mix, lanes_total: int) -> int:
    """A real mid-stream mixer lane state (shuffle buffers full), copied to every lane."""
    shards = mix_shards(mix)
    lane = build_lane(mix, shards, 0)
    for _ in range(20):
        next(lane)
    one = lane.state_dict()
    lane.close()
    loader = Loader(mix.model_copy(update={"num_lanes": lanes_total}), shards=shards)
    loader._lanes = {str(i): one for i in range(lanes_total)}
    return len(json.dumps(loader.state_dict()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    p.add_argument("--builtin", action="store_true", help="the embedded stdlib corpus")
    p.add_argument("--limit-docs", type=int, default=3000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "mix.md"))
    args = p.parse_args(argv)
    docs = documents(args)
    with tempfile.TemporaryDirectory() as tmp:
        one, mix = configs(Path(tmp), docs, args.lanes, args.seq_len)
        run(one), run(mix)  # warm: tokenizer load, page cache
        times = {"one source": [], "3-source mixture": []}
        tokens = {}
        for _ in range(args.repeat):
            for name, cfg in (("one source", one), ("3-source mixture", mix)):
                dt, n = run(cfg)
                times[name].append(dt)
                tokens[name] = n
        size = state_size(mix, 1024)
    rate = {k: tokens[k] / median(v) for k, v in times.items()}
    ratio = rate["3-source mixture"] / rate["one source"]
    m = machine_info()
    lines = [
        "# Mixture benchmark", "",
        f"`{' '.join(['python', 'benchmarks/bench_mix.py', *(argv or sys.argv[1:])])}` - "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC - "
        f"{m['cpu']}, {m['nproc']} cores, Python {m['python']}",
        "", f"{len(docs)} documents dealt into 3 tar corpora; seq_len {args.seq_len}, "
        f"{args.lanes} lanes, shuffle buffer 16, Loader with 0 workers; median of {args.repeat}.",
        "", "| variant | tokens | median s | tokens/s | rounds (s) |", "|---|---|---|---|---|",
    ]
    for k, v in times.items():
        lines.append(f"| {k} | {tokens[k]:,} | {median(v):.2f} | {rate[k]:,.0f} | "
                     + ", ".join(f"{x:.2f}" for x in v) + " |")
    lines += ["", f"Mixture / one source: **{ratio:.3f}x** (goal >= 0.95).", "",
              f"Loader state, 3 sources x 1,024 lanes (each lane mid-stream, shuffle buffers "
              f"of 16 full): **{size:,} bytes** ({size / 1024:.0f} KiB, {size / 3072:.0f} bytes "
              "per source-lane).", ""]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
