"""End-to-end pipeline benchmark: student tokens/s per worker core with 0, 1 and 2 teachers.

The dev corpus (``../shared/corpus/dev.parquet``, or a deterministic prefix with
``--limit-docs``) is written as local tar shards (``write_shards``, keys via ``safe_key``) to a
temp folder. For each teacher set (student ``pkg:qwen2``; teachers ``pkg:mistral-v3`` and
``pkg:mistral-v3`` + ``pkg:deepseek-v4``) three things are timed on the *same* packed sequences,
in the same run, single threaded (TOKENIZERS_PARALLELISM=false, RAYON/NUMBA/OMP 1 thread):

* ``tokenization-only ceiling``: exactly the tokenizer calls the pipeline makes for those
  sequences and nothing else: the student ``backend_tokenizer.encode(text,
  add_special_tokens=False)`` of every document the packer opens in the window, plus per
  teacher one ``backend_tokenizer.encode_batch(seq.texts, add_special_tokens=False)`` per packed
  sequence. The documents and piece texts are captured beforehand by one untimed pass of the
  packer (``build_consumer(...).source``, the lane mux), so only the encode calls are timed.
* ``ours in-process``: ``xtok_stream.pipeline.build_consumer(config, shards)`` iterated
  directly in this process: the per-core cost without IPC.
* ``ours Loader num_workers=1``: ``xtok_stream.loader.Loader`` with one DataLoader worker
  process (all the work happens there; this process only receives batches).

Each measurement builds a fresh pipeline, drops the first ``--warmup`` batches (tokenizer load,
numba, shard opens) and times the next ``--batches`` batches; ``--repeat`` rounds interleave the
variants so drift on a noisy machine hits all of them alike; medians are reported. Student
tokens = real tokens (``input_lengths``) of the timed batches, the same count for all variants.

For scale, the *reference path* on the first ``--reference-samples`` timed sequences: the same
tokenizer calls, the teacher ids built as the teacher stage builds them, and
``benchmarks/reference_aligner.py`` (our re-implementation of the reference DP aligner) per
teacher; one run.

    python benchmarks/bench_pipeline.py                           # full run (~5 min on 2 cores)
    python benchmarks/bench_pipeline.py --limit-docs 2000 --repeat 1 --batches 5   # quick look
    python benchmarks/bench_pipeline.py --builtin --seq-len 512 --repeat 1 --batches 2   # no corpus
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import single_thread

single_thread()  # before tokenizers / numba / torch are imported

import argparse
import datetime
import math
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bench_stream import load_documents
from common import DEFAULT_CORPUS, machine_info, median

STUDENT = "pkg:qwen2"
TEACHER_SETS: dict[int, list[str]] = {
    0: [],
    1: ["pkg:mistral-v3"],
    2: ["pkg:mistral-v3", "pkg:deepseek-v4"],
}
GOAL_TOK_S = 50_000  # student tokens/s per core with two teachers
GOAL_CEILING = 0.60  # ours / tokenization-only ceiling
ISSUE_REFERENCE_TOK_S = 3_400  # the issue's reference path, two teachers, this machine

CEILING = "tokenization-only ceiling"
INPROC = "ours in-process (build_consumer)"
LOADER = "ours Loader num_workers=1"
REFERENCE = "reference path (tokenize + DP align)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help="parquet with columns id, text (default: %(default)s)")
    p.add_argument("--builtin", action="store_true",
                   help="use 40 documents of the embedded demo corpus instead of --corpus")
    p.add_argument("--limit-docs", type=int, default=None, help="first N documents only")
    p.add_argument("--shards", type=int, default=64, help="number of shards to write")
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=24,
                   help="timed batches per measurement (after --warmup)")
    p.add_argument("--warmup", type=int, default=1, help="untimed batches first (>= 1)")
    p.add_argument("--repeat", type=int, default=5, help="rounds per measurement (median)")
    p.add_argument("--teachers", default="0,1,2",
                   help="teacher sets to run, comma list of 0/1/2 (default: %(default)s)")
    p.add_argument("--no-loader", action="store_true", help="skip the Loader rows")
    p.add_argument("--reference-samples", type=int, default=2,
                   help="packed sequences run through the (slow) reference path; 0 = skip")
    p.add_argument("--out", default="benchmarks/results/pipeline.md",
                   help="markdown file to write ('' to only print)")
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error("--warmup must be >= 1 (the first batch loads tokenizers and compiles)")
    return args


# ---------------------------------------------------------------------------------------------
# config / capture


def make_config(shards: list[str], args: argparse.Namespace, n_teachers: int, workers: int):
    from xtok_stream.config import load_config

    return load_config({
        "source": {"urls": shards},
        "student": {"tokenizer": STUDENT, "seq_len": args.seq_len},
        "teachers": [{"tokenizer": t} for t in TEACHER_SETS[n_teachers]],
        "batch_size": args.batch_size, "epochs": 1, "num_workers": workers,
    })


@dataclass
class Captured:
    """What the packer produces for the timed window (and the documents it opens there)."""

    seqs: list[Any]  # PackedSequence, in the order the batcher consumes them
    opened: list[list[str]]  # per sequence: texts of the documents whose first piece is in it
    ids: np.ndarray  # int64 [n_seqs, seq_len] student ids (padding included), for the sanity check

    @property
    def tokens(self) -> int:
        return int(sum(s.length for s in self.seqs))


def capture(shards: list[str], args: argparse.Namespace, texts: dict[str, str]) -> tuple[Captured, int]:
    """One untimed pass of the lane mux (read + pack, no teachers): the sequences of batches
    ``warmup .. warmup + batches`` and the documents the packer opens while producing them.
    Returns the capture and the number of timed batches (fewer if the data runs out)."""
    from xtok_stream.pipeline import build_consumer

    B = args.batch_size
    consumer = build_consumer(make_config(shards, args, 0, 0), shards)
    mux = consumer.source
    seen: set[str] = set()
    seqs, opened = [], []
    limit = (args.warmup + args.batches) * B
    for seq in mux:
        new = []
        for p in seq.pieces:
            if p.key not in seen:  # first piece of a document = the packer's encode call
                seen.add(p.key)
                new.append(texts[p.key])
        seqs.append(seq)
        opened.append(new)
        if len(seqs) == limit:
            break
    consumer.close()
    n_batches = len(seqs) // B - args.warmup
    if n_batches < 1:
        raise SystemExit(
            f"only {len(seqs)} packed sequences ({len(seqs) // B} full batches of {B}): need more "
            f"than --warmup {args.warmup} batches; use more data or a smaller --seq-len"
        )
    lo, hi = args.warmup * B, (args.warmup + n_batches) * B
    window = seqs[lo:hi]
    return Captured(window, opened[lo:hi], np.stack([s.input_ids for s in window])), n_batches


# ---------------------------------------------------------------------------------------------
# measurements: each returns (seconds, student tokens, student ids of the timed batches or None)


def ceiling_run(cap: Captured, n_teachers: int) -> tuple[float, int, None]:
    from xtok_stream.tokenizers import load_tokenizer

    student = load_tokenizer(STUDENT).backend_tokenizer
    teachers = [load_tokenizer(t).backend_tokenizer for t in TEACHER_SETS[n_teachers]]
    t0 = time.perf_counter()
    for seq, docs in zip(cap.seqs, cap.opened):
        for text in docs:
            student.encode(text, add_special_tokens=False)
        for tb in teachers:
            tb.encode_batch(seq.texts, add_special_tokens=False)
    return time.perf_counter() - t0, cap.tokens, None


def _drain(it, warmup: int, n: int) -> tuple[float, int, np.ndarray]:
    for _ in range(warmup):
        next(it)
    ids = []
    tokens = 0
    t0 = time.perf_counter()
    for _ in range(n):
        batch = next(it)
        tokens += int(batch["input_lengths"].sum())
        ids.append(batch["input_ids"])
    dt = time.perf_counter() - t0
    return dt, tokens, np.concatenate([t.numpy() for t in ids])


def inprocess_run(shards, args, n_teachers: int, n_batches: int):
    from xtok_stream.pipeline import build_consumer

    stream = build_consumer(make_config(shards, args, n_teachers, 0), shards)
    try:
        return _drain(stream, args.warmup, n_batches)
    finally:
        stream.close()


def loader_run(shards, args, n_teachers: int, n_batches: int):
    from xtok_stream.loader import Loader

    loader = Loader(make_config(shards, args, n_teachers, 1), shards=shards, rank=0, world_size=1)
    it = iter(loader)
    try:
        return _drain(it, args.warmup, n_batches)
    finally:
        it.close()  # the generator's finally shuts the worker down


@dataclass
class RefResult:
    seqs: int = 0
    tokens: int = 0
    student_s: float = 0.0  # student encode of the opened documents
    teacher_s: dict[str, float] = field(default_factory=dict)  # per teacher: encode + ids + DP
    align_s: dict[str, float] = field(default_factory=dict)  # per teacher: the DP alone
    exact_share: dict[str, float] = field(default_factory=dict)

    def seconds(self, n_teachers: int) -> float:
        return self.student_s + sum(self.teacher_s[t] for t in TEACHER_SETS[n_teachers])


def _adds_bos(tok: Any) -> bool:
    """Same test as the teacher stage: does a plain encode start with the tokenizer's BOS?"""
    if tok.bos_token_id is None:
        return False
    ids = tok("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tok.bos_token_id


def reference_run(cap: Captured, n_samples: int, max_len: int) -> RefResult:
    """The reference path on the first ``n_samples`` timed sequences, both teachers, one run."""
    from reference_aligner import ReferenceTokenAligner, summarize

    from xtok_stream.tokenizers import load_tokenizer

    student_tok = load_tokenizer(STUDENT)
    r = RefResult()
    seqs = cap.seqs[:n_samples]
    opened = cap.opened[:n_samples]
    r.seqs, r.tokens = len(seqs), int(sum(s.length for s in seqs))
    t0 = time.perf_counter()
    for docs in opened:
        for text in docs:
            student_tok.backend_tokenizer.encode(text, add_special_tokens=False)
    r.student_s = time.perf_counter() - t0
    for spec in TEACHER_SETS[2]:
        tok = load_tokenizer(spec)
        backend, eos = tok.backend_tokenizer, tok.eos_token_id
        bos = tok.bos_token_id if _adds_bos(tok) else None
        ref = ReferenceTokenAligner(student_tok, tok)
        total = align = 0.0
        n_chunks = n_exact = 0
        for seq in seqs:
            t0 = time.perf_counter()
            encs = backend.encode_batch(seq.texts, add_special_tokens=False)
            flat: list[int] = []
            for piece, enc in zip(seq.pieces, encs):
                if bos is not None and piece.char_start == 0:
                    flat.append(bos)
                flat.extend(enc.ids)
                if piece.ends_document and eos is not None:
                    flat.append(eos)
            t_ids = flat[:max_len]
            t1 = time.perf_counter()
            chunks = ref.align(seq.input_ids[: seq.length].tolist(), t_ids)
            t2 = time.perf_counter()
            total += t2 - t0
            align += t2 - t1
            s = summarize(chunks)
            n_chunks += s["chunks"]
            n_exact += s["exact"]
        key = spec.removeprefix("pkg:")
        r.teacher_s[spec], r.align_s[spec] = total, align
        r.exact_share[key] = n_exact / max(n_chunks, 1)
    return r


# ---------------------------------------------------------------------------------------------
# runner / report


@dataclass
class Row:
    n_teachers: int
    name: str
    fn: Callable[[], tuple[float, int, np.ndarray | None]] = field(repr=False)
    times: list[float] = field(default_factory=list)
    tokens: int = 0

    @property
    def tok_s(self) -> float:
        return self.tokens / median(self.times) if self.times else float("nan")


def fmt_int(x: float) -> str:
    return "–" if x is None or not x or math.isnan(x) else f"{x:,.0f}"


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def ceiling_ratio(row: Row, ceiling: Row) -> float:
    """ours / ceiling throughput: the median over rounds of the per-round ratio (both ran on the
    same tokens, back to back, so machine noise largely cancels within a round)."""
    return median([c / t for c, t in zip(ceiling.times, row.times)])


def render(rows: list[Row], ref: RefResult | None, head: list[str]) -> tuple[str, list[bool]]:
    by = {(r.n_teachers, r.name): r for r in rows}
    lines = head + [
        "",
        "| teachers | measurement | median s | min–max s | student tokens/s per core | "
        "ours / ceiling | ours / reference |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    ref_tok_s = {}
    if ref is not None and ref.seqs:
        for k in (1, 2):
            ref_tok_s[k] = ref.tokens / ref.seconds(k)
    for r in rows:
        ceil = by.get((r.n_teachers, CEILING))
        pct = ""
        if r.name != CEILING and ceil is not None:
            pct = f"{ceiling_ratio(r, ceil):.1%}"
        vs_ref = ""
        if r.name != CEILING and r.n_teachers in ref_tok_s:
            vs_ref = f"{r.tok_s / ref_tok_s[r.n_teachers]:,.1f}×"
        lines.append(
            f"| {r.n_teachers} | {r.name} | {median(r.times):.3f} | {min(r.times):.3f}–"
            f"{max(r.times):.3f} | {fmt_int(r.tok_s)} | {pct} | {vs_ref} |"
        )
    for k, v in ref_tok_s.items():
        lines.append(
            f"| {k} | {REFERENCE} ({ref.seqs} seq) | {ref.seconds(k):.3f} | – | {fmt_int(v)} | "
            f"| 1.0× |"
        )
    if ref is not None and ref.seqs:
        parts = ", ".join(
            f"{t.removeprefix('pkg:')}: DP {ref.align_s[t] / ref.seqs * 1e3:,.0f} ms/seq, "
            f"exact share {ref.exact_share[t.removeprefix('pkg:')]:.1%}"
            for t in TEACHER_SETS[2]
        )
        lines += ["", f"Reference path detail: student encode "
                      f"{ref.student_s / ref.seqs * 1e3:.1f} ms/seq; {parts}."]

    lines += ["", "Goals (medians, two teachers):", ""]
    oks: list[bool] = []
    ceil2 = by.get((2, CEILING))
    for name in (LOADER, INPROC):
        r = by.get((2, name))
        if r is None:
            continue
        ok = r.tok_s >= GOAL_TOK_S
        oks.append(ok)
        lines.append(f"- {name}: **{fmt_int(r.tok_s)}** student tokens/s per core {mark(ok)} — "
                     f"goal ≥ {GOAL_TOK_S:,}")
        if ceil2 is not None:
            q = ceiling_ratio(r, ceil2)
            ok = q >= GOAL_CEILING
            oks.append(ok)
            lines.append(f"- {name} / tokenization-only ceiling: **{q:.1%}** {mark(ok)} — goal "
                         f"≥ {GOAL_CEILING:.0%}")
    if 2 in ref_tok_s and (2, LOADER) in by:
        lines.append(f"- for scale: {LOADER} / reference path = "
                     f"**{by[(2, LOADER)].tok_s / ref_tok_s[2]:,.1f}×** (reference measured here: "
                     f"{fmt_int(ref_tok_s[2])} tokens/s; the issue quotes ~{ISSUE_REFERENCE_TOK_S:,} "
                     "for the real reference on this machine)")
    return "\n".join(lines) + "\n", oks


def library_info() -> str:
    """Where ``xtok_stream`` was imported from and, inside this repository, its git state."""
    import subprocess

    import xtok_stream

    pkg = Path(xtok_stream.__file__).resolve().parent
    desc = os.environ.get("XTOK_BENCH_LIBRARY", "")  # e.g. "git archive of <sha>" for a snapshot
    try:
        root = Path(subprocess.run(["git", "-C", str(pkg), "rev-parse", "--show-toplevel"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", str(pkg)],
                               capture_output=True, text=True, check=True).stdout.split("\n")
        dirty = [l[3:] for l in dirty if l.strip()]
        git = f"git {sha}" + (f", uncommitted changes in {', '.join(dirty)}" if dirty else ", clean")
    except (OSError, subprocess.CalledProcessError):
        git = "not a git checkout"
    return f"`{pkg}` ({desc or git})"


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    t_start = time.perf_counter()
    sets = sorted({int(k) for k in args.teachers.split(",") if k.strip()})
    if not sets or any(k not in TEACHER_SETS for k in sets):
        raise SystemExit(f"--teachers: choose from {sorted(TEACHER_SETS)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    docs, where = load_documents(args)
    texts = {d["__key__"]: d["txt"] for d in docs}
    n_docs = len(docs)
    n_chars = sum(len(t) for t in texts.values())
    per_shard = max(1, math.ceil(n_docs / max(1, args.shards)))

    from xtok_stream.io.shards import write_shards
    from xtok_stream.tokenizers import load_tokenizer

    for spec in [STUDENT, *TEACHER_SETS[2]]:
        load_tokenizer(spec)  # build/load once, outside every timing

    tmp = Path(tempfile.mkdtemp(prefix="xtok-bench-pipeline-"))
    ref: RefResult | None = None
    try:
        infos = write_shards(docs, str(tmp), samples_per_shard=per_shard)
        shards = [str(tmp / i.name) for i in infos]
        log(f"{n_docs} docs, {n_chars:,} chars -> {len(shards)} shards in {tmp}")

        cap, n_batches = capture(shards, args, texts)
        log(f"timed window: {n_batches} batches x {args.batch_size} sequences, "
            f"{cap.tokens:,} student tokens, {sum(len(o) for o in cap.opened)} documents opened")

        rows: list[Row] = []
        for k in sets:
            rows.append(Row(k, CEILING, lambda k=k: ceiling_run(cap, k)))
            rows.append(Row(k, INPROC, lambda k=k: inprocess_run(shards, args, k, n_batches)))
            if not args.no_loader:
                rows.append(Row(k, LOADER, lambda k=k: loader_run(shards, args, k, n_batches)))

        for rnd in range(args.repeat):
            for row in rows:
                dt, tokens, ids = row.fn()
                if ids is not None and not np.array_equal(ids, cap.ids):
                    raise RuntimeError(f"{row.name}, {row.n_teachers} teachers: the timed batches "
                                       "differ from the captured sequences")
                if tokens != cap.tokens:
                    raise RuntimeError(f"{row.name}: {tokens} tokens, expected {cap.tokens}")
                row.times.append(dt)
                row.tokens = tokens
                log(f"  round {rnd + 1}/{args.repeat}  {row.n_teachers} teachers  {row.name}: "
                    f"{dt:.3f} s, {tokens / dt:,.0f} tok/s")

        if args.reference_samples > 0:
            n = min(args.reference_samples, len(cap.seqs))
            log(f"reference path on {n} sequences ...")
            ref = reference_run(cap, n, 2 * args.seq_len)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    m = machine_info()
    given = argv if argv is not None else sys.argv[1:]
    cmd = "python benchmarks/bench_pipeline.py" + (" " + shlex.join(given) if given else "")
    teacher_desc = "; ".join(
        f"{k}: " + (" + ".join(TEACHER_SETS[k]) if TEACHER_SETS[k] else "none") for k in sets
    )
    head = [
        "# Pipeline benchmark (read → pack → teachers → batch), student tokens/s per core",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- machine: {m['platform']}, Python {m['python']}, CPU {m['cpu']}, nproc {m['nproc']}; "
        "TOKENIZERS_PARALLELISM=false, RAYON/NUMBA/OMP threads 1; in-process rows and the "
        "ceiling run in this one process; the Loader row does all the work in its one worker "
        "process (the main process only receives batches)",
        f"- library: xtok_stream from {library_info()}",
        f"- data: {where}; {n_docs:,} documents, {n_chars:,} characters -> {len(infos)} tar "
        f"shards of ≤ {per_shard} documents written with `write_shards` to a temp folder; "
        f"16 lanes, shard shuffle on (seed 0), epochs 1",
        f"- student {STUDENT}, seq_len {args.seq_len}, batch {args.batch_size}; teachers "
        f"({teacher_desc}), max_len 2 × seq_len",
        f"- each measurement: fresh pipeline, first {args.warmup} batch(es) untimed (tokenizer "
        f"load, numba, shard opens), then {n_batches} timed batches = {len(cap.seqs)} sequences, "
        f"{cap.tokens:,} real student tokens ({sum(len(o) for o in cap.opened):,} documents "
        f"opened); {args.repeat} rounds, variants interleaved; medians. The timed batches' "
        "student ids are checked equal to the captured sequences for every row",
        "- ours / ceiling = median over rounds of (ceiling time / our time) within the round "
        "(same tokens, measured back to back); ours / reference = our median tokens/s / the "
        "reference path's tokens/s. The Loader keeps its default prefetch_factor 2: the timed "
        "window starts when the warm-up batch arrives in the main process",
        "- ceiling: exactly the pipeline's tokenizer calls for that window and nothing else: "
        "student `encode(text, add_special_tokens=False)` per opened document + per teacher "
        "`encode_batch(seq.texts, add_special_tokens=False)` per sequence (texts captured by an "
        "untimed packer pass)",
        "- reference path: on the first timed sequences, the same student/teacher tokenizer calls, "
        "teacher ids built as the teacher stage does (BOS/EOS, max_len) and "
        "`benchmarks/reference_aligner.py` (our re-implementation of the reference DP aligner, "
        "max_comb_len 4, dp_chunk_size 128) per teacher; one run; the 1-teacher figure uses the "
        "mistral-v3 part of the same run",
        f"- goals: ≥ {GOAL_TOK_S:,} student tokens/s per core with two teachers, and ≥ "
        f"{GOAL_CEILING:.0%} of the tokenization-only ceiling",
        f"- wall time of the run: {time.perf_counter() - t_start:.0f} s",
    ]
    table, _ = render(rows, ref, head)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        log(f"wrote {out}")
    return table


if __name__ == "__main__":
    main()
