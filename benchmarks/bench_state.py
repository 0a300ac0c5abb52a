"""Cost of state that the structure used to hide (issue 13): shuffle buffers and startup.

1. Shuffle buffer: one lane ``read -> [shuffle] -> pack`` (qwen2, seq_len 4096) over local shards
   of the dev corpus, buffer 0 vs 1,000, alternating runs in the same process; plus the restore
   time of a lane whose buffer is full, and the state size. ``Shuffler.state_dict()`` is O(1)
   per step (a snapshot every ``buffer`` documents), so the buffer should cost <= 10 %.
2. Startup: time to first batch after ``import`` with two teachers (warm tokenizer cache), in a
   fresh process each run, and how long fingerprinting the three tokenizers takes by their
   files' bytes (now) vs by loading them (before).

    python benchmarks/bench_state.py [--builtin] [--limit-docs N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_stream import load_documents
from benchmarks.common import DEFAULT_CORPUS, machine_info, median, single_thread

STUDENT, TEACHERS = "pkg:qwen2", ["pkg:mistral-v3", "pkg:deepseek-v4"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--builtin", action="store_true", help="tiny run on the embedded demo corpus")
    p.add_argument("--limit-docs", type=int, default=4000)
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--buffer", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-startup", action="store_true", help="only the shuffle-buffer part")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "state.md")
    return p.parse_args(argv)


def lane(shards, buffer, seq_len):
    from xtok_stream.stages.pack import Packer
    from xtok_stream.stages.read import DocumentReader
    from xtok_stream.stages.shuffle import Shuffler

    src = DocumentReader(shards, lane=0, num_lanes=1, seed=0, epochs=1)
    docs = Shuffler(src, size=buffer, seed=0, lane=0) if buffer else src
    return Packer(docs, tokenizer=STUDENT, seq_len=seq_len)


def run_lane(shards, buffer, seq_len) -> tuple[float, int, int]:
    """(seconds, real tokens, largest state JSON in bytes) of a whole lane."""
    stage = lane(shards, buffer, seq_len)
    t0 = time.perf_counter()
    tokens, biggest = 0, 0
    for i, seq in enumerate(stage):
        tokens += seq.length
        if i % 16 == 0:
            biggest = max(biggest, len(json.dumps(stage.state_dict())))
    return time.perf_counter() - t0, tokens, biggest


def restore_time(shards, buffer, seq_len) -> float:
    """Seconds to restore a lane whose shuffle snapshot holds a full buffer, to its next item."""
    stage = lane(shards, buffer, seq_len)
    while len(stage.state_dict()["source"]["buffer"]) < buffer - 1:
        next(stage)
    for _ in range(3):
        next(stage)
    state = json.loads(json.dumps(stage.state_dict()))
    stage.close()
    t0 = time.perf_counter()
    again = lane(shards, buffer, seq_len)
    again.load_state_dict(state)
    next(again)
    return time.perf_counter() - t0


STARTUP = r"""
import json, sys, time
t0 = time.perf_counter()
from xtok_stream.config import load_config
from xtok_stream.loader import Loader
t1 = time.perf_counter()
cfg = load_config(json.loads(sys.argv[1]))
loader = Loader(cfg)
t2 = time.perf_counter()
batch = next(iter(loader))
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "init": t2 - t1, "first_batch": t3 - t1}))
"""

FINGERPRINT = r"""
import json, time
from xtok_stream.tokenizers import tokenizer_sha256, vocab_sha256
specs = %r
t0 = time.perf_counter(); [tokenizer_sha256(s) for s in specs]; t1 = time.perf_counter()
[vocab_sha256(s) for s in specs]; t2 = time.perf_counter()
print(json.dumps({"files": t1 - t0, "load": t2 - t1}))
"""


def startup(shards, repeat) -> tuple[dict, dict]:
    cfg = {"source": {"urls": shards}, "student": {"tokenizer": STUDENT, "seq_len": 4096},
           "teachers": [{"tokenizer": t} for t in TEACHERS], "batch_size": 8, "num_lanes": 4}
    py = [sys.executable, "-c"]
    env_cmd = {"cwd": str(REPO), "capture_output": True, "text": True, "check": True}
    subprocess.run(py + [STARTUP, json.dumps(cfg)], **env_cmd)  # warm the caches (numba, tokenizers)
    runs = [json.loads(subprocess.run(py + [STARTUP, json.dumps(cfg)], **env_cmd).stdout)
            for _ in range(repeat)]
    fps = [json.loads(subprocess.run(py + [FINGERPRINT % ([STUDENT, *TEACHERS],)],
                                     **env_cmd).stdout) for _ in range(repeat)]
    agg = {k: median([r[k] for r in runs]) for k in runs[0]}
    return agg, {k: median([r[k] for r in fps]) for k in fps[0]}


def main(argv=None) -> str:
    args = parse_args(argv)
    single_thread()
    from xtok_stream.io.shards import write_shards

    docs, where = load_documents(args)
    tmp = tempfile.mkdtemp(prefix="bench-state-")
    infos = write_shards(docs, tmp, samples_per_shard=max(1, len(docs) // 8))
    shards = [f"{tmp}/{i.name}" for i in infos]
    buffer = min(args.buffer, max(2, len(docs) // 4))

    from xtok_stream.tokenizers import load_tokenizer

    load_tokenizer(STUDENT)
    rows = {0: [], buffer: []}
    sizes = {}
    for _ in range(args.repeat):
        for b in (0, buffer):
            sec, tokens, biggest = run_lane(shards, b, args.seq_len)
            rows[b].append(tokens / sec)
            sizes[b] = biggest
    restore = median([restore_time(shards, buffer, args.seq_len) for _ in range(args.repeat)])
    ratio = median(rows[buffer]) / median(rows[0])
    boot, fp = (None, None) if args.skip_startup else startup(shards, args.repeat)

    m = machine_info()
    lines = [
        "# State costs: shuffle buffer and startup",
        "",
        f"Data: {len(docs)} documents of {where}, {len(shards)} local shards. Machine: {m['cpu']}"
        f", {m['nproc']} cores (shared), Python {m['python']}. Single-threaded tokenizers; "
        f"median of {args.repeat} alternating runs. Command: `python benchmarks/bench_state.py`.",
        "",
        "| lane read -> shuffle -> pack (qwen2, seq_len "
        f"{args.seq_len}) | student tokens/s | vs no buffer | largest lane state |",
        "|---|---|---|---|",
        f"| no buffer | {median(rows[0]):,.0f} | 1.00x | {sizes[0]:,} B |",
        f"| shuffle.buffer {buffer} | {median(rows[buffer]):,.0f} | {ratio:.2f}x | "
        f"{sizes[buffer]:,} B |",
        "",
        f"Restore of a lane with a full {buffer}-document buffer, to its next sequence: "
        f"{restore:.2f} s (re-fetch per shard in one sequential read, replay <= {buffer} draws).",
        "",
    ]
    if boot is not None:
        lines += [
            "| startup, two teachers (mistral-v3, deepseek-v4), warm cache, fresh process | s |",
            "|---|---|",
            f"| `import xtok_stream.loader` | {boot['import']:.2f} |",
            f"| `Loader(config)` (fingerprints 3 tokenizers by file bytes) | {boot['init']:.2f} |",
            f"| time to first batch after import (Loader() + first next()) | "
            f"{boot['first_batch']:.2f} |",
            f"| fingerprint 3 tokenizers by files' bytes (now) | {fp['files']:.3f} |",
            f"| fingerprint 3 tokenizers by loading them (before) | {fp['load']:.2f} |",
            "",
        ]
    table = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
