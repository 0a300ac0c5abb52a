"""Training-side throughput: precomputed shards vs tokenizing and aligning on the fly.

A deterministic prefix of the dev corpus (``--limit-docs``) is written as local tar shards
(``write_shards``, keys via ``safe_key``); ``xtok_stream.precompute.precompute`` runs the
pipeline's lanes once over them (student ``pkg:qwen2``, teachers ``pkg:mistral-v3`` +
``pkg:deepseek-v4``, max_len 2 x seq_len) into precomputed shards (timed once, as the one-off
cost). Then, single threaded (TOKENIZERS_PARALLELISM=false, RAYON/NUMBA/OMP 1 thread), for both
sources:

* ``in-process``: ``build_consumer(config, shards)`` iterated in this process;
* ``Loader num_workers=1``: ``Loader`` with one DataLoader worker doing all the work.

Each measurement builds a fresh pipeline, drops the first ``--warmup`` batches and times the next
``--batches``; ``--repeat`` rounds interleave the four variants; medians are reported. The timed
batches' student and teacher ids of both sources are hashed and checked equal.

    python benchmarks/bench_precompute.py                                   # ~4 min on 2 cores
    python benchmarks/bench_precompute.py --limit-docs 600 --batches 4 --repeat 1   # quick look
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import single_thread

single_thread()  # before tokenizers / numba / torch are imported

import argparse
import datetime
import hashlib
import shlex
import tempfile
import time

from common import DEFAULT_CORPUS, REPO, machine_info, median

STUDENT = "pkg:qwen2"
TEACHERS = ("pkg:mistral-v3", "pkg:deepseek-v4")
OUT = REPO / "benchmarks" / "results" / "precompute.md"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    p.add_argument("--limit-docs", type=int, default=2000)
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-lanes", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--precompute-workers", type=int, default=2)
    p.add_argument("--out", default=str(OUT), help="markdown report ('-' = stdout only)")
    return p.parse_args(argv)


def make_config(urls, args, fmt: str, workers: int):
    from xtok_stream.config import load_config

    return load_config({
        "source": {"urls": urls, "format": fmt},
        "student": {"tokenizer": STUDENT, "seq_len": args.seq_len},
        "teachers": [{"tokenizer": t} for t in TEACHERS],
        "batch_size": args.batch_size, "epochs": 1, "num_workers": workers,
        "num_lanes": args.num_lanes,
    })


def _drain(it, warmup: int, n: int):
    for _ in range(warmup):
        next(it)
    h = hashlib.sha256()
    tokens = 0
    t0 = time.perf_counter()
    for _ in range(n):
        b = next(it)
        tokens += int(b["input_lengths"].sum())
        h.update(b["input_ids"].numpy().tobytes())
        for name in sorted(b["teachers"]):
            t = b["teachers"][name]
            h.update(t["input_ids"].numpy().tobytes())
            h.update(t["student_chunk_id"].numpy().tobytes())
            h.update(t["teacher_chunk_id"].numpy().tobytes())
    return time.perf_counter() - t0, tokens, h.hexdigest()[:16]


def inprocess(config, shards, args):
    from xtok_stream.pipeline import build_consumer

    stream = build_consumer(config, shards)
    try:
        return _drain(stream, args.warmup, args.batches)
    finally:
        stream.close()


def loader(config, shards, args):
    from xtok_stream.loader import Loader

    it = iter(Loader(config, shards=shards, rank=0, world_size=1))
    try:
        return _drain(it, args.warmup, args.batches)
    finally:
        it.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    import pyarrow.parquet as pq

    from xtok_stream.convert.precompute import precompute
    from xtok_stream.io.shards import safe_key, write_shards

    rows = pq.read_table(args.corpus, columns=["id", "text"]).slice(0, args.limit_docs).to_pylist()
    tmp = Path(tempfile.mkdtemp(prefix="bench-precompute-"))
    infos = write_shards(({"__key__": safe_key(r["id"]), "txt": r["text"]} for r in rows),
                         str(tmp / "text"), samples_per_shard=100)
    text_shards = [str(tmp / "text" / i.name) for i in infos]
    text_bytes = sum(i.bytes for i in infos)
    chars = sum(len(r["text"]) for r in rows)

    t0 = time.perf_counter()
    index = precompute(make_config(text_shards, args, "tar", 0), str(tmp / "pre"),
                       workers=args.precompute_workers)
    pre_s = time.perf_counter() - t0
    pre_shards = sorted(str(p) for p in (tmp / "pre").glob("lane*.tar"))
    pre_bytes = sum(Path(p).stat().st_size for p in pre_shards)
    need = (args.warmup + args.batches) * args.batch_size
    if index["sequences"] < need:
        raise SystemExit(f"only {index['sequences']} sequences, need {need}: raise --limit-docs")

    variants = [
        ("on the fly", "in-process (build_consumer)", "tar", text_shards, inprocess),
        ("precomputed", "in-process (build_consumer)", "precomputed", pre_shards, inprocess),
        ("on the fly", "Loader num_workers=1", "tar", text_shards, loader),
        ("precomputed", "Loader num_workers=1", "precomputed", pre_shards, loader),
    ]
    times: dict[int, list[float]] = {i: [] for i in range(len(variants))}
    tokens: dict[int, int] = {}
    hashes: dict[int, set[str]] = {i: set() for i in range(len(variants))}
    for r in range(args.repeat):
        for i, (_, _, fmt, shards, fn) in enumerate(variants):
            workers = 1 if fn is loader else 0
            dt, n, h = fn(make_config(shards, args, fmt, workers), shards, args)
            times[i].append(dt)
            tokens[i] = n
            hashes[i].add(h)
            print(f"round {r}: {variants[i][0]:12s} {variants[i][1]:28s} {dt:7.3f}s "
                  f"{n / dt:12,.0f} tok/s  {h}", flush=True)
    all_hashes = set().union(*hashes.values())
    equal = len(all_hashes) == 1

    m = machine_info()
    lines = [
        "# Precomputed shards vs on the fly: training-side student tokens/s",
        "",
        f"- command: `{shlex.join(['python', 'benchmarks/bench_precompute.py', *(argv or sys.argv[1:])])}`",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- machine: {m['platform']}, Python {m['python']}, CPU {m['cpu']}, nproc {m['nproc']}; "
        "TOKENIZERS_PARALLELISM=false, RAYON/NUMBA/OMP threads 1 (a shared, noisy machine)",
        f"- data: first {len(rows):,} documents of {args.corpus} ({chars:,} characters) -> "
        f"{len(text_shards)} local tar shards ({text_bytes / 1e6:.1f} MB)",
        f"- pipeline: student {STUDENT}, seq_len {args.seq_len}, batch {args.batch_size}, "
        f"teachers {' + '.join(TEACHERS)} (max_len 2 x seq_len), {args.num_lanes} lanes, "
        "shard shuffle on (seed 0), epochs 1",
        f"- precompute (one-off, `precompute(..., workers={args.precompute_workers})`): "
        f"{index['sequences']:,} sequences, {index['tokens']:,} student tokens in {pre_s:.1f} s "
        f"({index['tokens'] / pre_s:,.0f} tokens/s on {args.precompute_workers} processes); "
        f"{len(pre_shards)} shards, {pre_bytes / 1e6:.1f} MB = "
        f"{pre_bytes / max(index['tokens'], 1):.1f} bytes per student token "
        f"({pre_bytes / max(text_bytes, 1):.1f}x the text shards)",
        f"- each measurement: fresh pipeline, first {args.warmup} batch(es) untimed, then "
        f"{args.batches} timed batches ({tokens[0]:,} real student tokens); {args.repeat} rounds, "
        "variants interleaved; medians",
        f"- equal batches: timed batches' hashes (student ids + each teacher's ids and chunk maps) "
        f"{'identical across all variants and rounds ✅' if equal else 'DIFFER ❌'} "
        f"(`{', '.join(sorted(all_hashes))}`)",
        f"- wall time of the run: {time.perf_counter() - t_start:.0f} s",
        "",
        "| source | measurement | median s | min–max s | student tokens/s per core | speedup |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for i, (src, what, *_rest) in enumerate(variants):
        med = median(times[i])
        base = median(times[i - 1]) if src == "precomputed" else med
        speed = f"{base / med:.1f}×" if src == "precomputed" else ""
        lines.append(f"| {src} | {what} | {med:.3f} | {min(times[i]):.3f}–{max(times[i]):.3f} "
                     f"| {tokens[i] / med:,.0f} | {speed} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out != "-":
        Path(args.out).write_text(report)
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
