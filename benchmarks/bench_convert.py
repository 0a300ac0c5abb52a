"""Throughput of ``xtok convert`` on the dev corpus: local process pool vs Ray, same machine.

Each run converts into a fresh folder (planning included, no plan cache), checks that every
engine wrote the same bytes, and reports MB/s of input text and docs/s. Two input layouts: the
corpus as shipped (one Parquet row group, so every shard task decodes the whole text column),
and the same rows re-written with 500-row groups (each task decodes only its groups).

    python benchmarks/bench_convert.py [--corpus PATH] [--repeats 3] [--out results/convert.md]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev.parquet"


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.glob("*.tar")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples-per-shard", type=int, default=500)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "convert.md"))
    args = ap.parse_args()

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from xtok_stream.convert import ConvertConfig, convert

    table = pq.read_table(args.corpus, columns=["id", "text"])
    text_mb = pc.sum(pc.binary_length(table["text"])).as_py() / 1e6
    docs = table.num_rows
    tmp = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    small_groups = tmp / "dev-rg500.parquet"
    pq.write_table(pq.read_table(args.corpus), small_groups, row_group_size=500)
    cfg = ConvertConfig(id_field="id", samples_per_shard=args.samples_per_shard)

    try:
        import ray
    except ImportError:
        ray = None
    engines = [("local", 1), ("local", 2)] + ([("ray", 2)] if ray else [])
    rows, digests = [], set()
    load = os.getloadavg()[0]
    for layout, src in (("1 row group (as shipped)", args.corpus),
                        ("500-row groups", str(small_groups))):
        for engine, n in engines:
            if engine == "ray":
                ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
            times = []
            for r in range(args.repeats + 1):  # first run warms caches (and Ray's workers)
                out = tmp / f"out-{engine}-{n}-{r}"
                t0 = time.perf_counter()
                s = convert([src], str(out), cfg, engine=engine, workers=n, progress=False)
                dt = time.perf_counter() - t0
                if r:
                    times.append(dt)
                digests.add(digest(out))
            if engine == "ray":
                ray.shutdown()
            med = statistics.median(times)
            label = f"ray (num_cpus={n})" if engine == "ray" else f"local --workers {n}"
            rows.append((layout, label, med, text_mb / med, docs / med, s.shards))
            print(rows[-1], flush=True)
    if len(digests) != 1:
        print(f"engines disagree: {digests}", file=sys.stderr)
        return 1

    lines = [
        "# `xtok convert` throughput: local process pool vs Ray",
        "",
        f"Corpus: `{Path(args.corpus).name}`, {docs:,} documents, {text_mb:.1f} MB of text; "
        f"`--id-field id --samples-per-shard {args.samples_per_shard}`, local disk output; "
        f"median of {args.repeats} runs after one warm-up, planning included. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load:.1f} at the start (the machine is "
        f"shared, so differences under ~20% are noise). Every run wrote byte-identical shards "
        f"(sha256 prefix `{digests.pop()}`).",
        "",
        "| input layout | engine | seconds | MB/s (text) | docs/s | shards |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c:.2f} | {d:.1f} | {e:,.0f} | {f} |" for a, b, c, d, e, f in rows]
    lines += ["", "Regenerate: `python benchmarks/bench_convert.py`.", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
