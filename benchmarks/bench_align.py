"""Benchmark ``xtok_stream.align`` against our re-implementation of the reference aligner.

Packed samples: documents of the corpus in a fixed seed-shuffled order (languages and kinds
mixed) are student-tokenized, joined with the student EOS and cut into ``--seq-len`` windows.
Each sample's text parts (split at EOS) are teacher-encoded and joined with the teacher EOS.
Everything runs single-threaded in one process, so all numbers come from the same run.

    .venv/bin/python benchmarks/bench_align.py                       # full run, writes results
    .venv/bin/python benchmarks/bench_align.py --builtin-text --samples 2 --seq-len 256 --out -

Measured per pair: table build per tokenizer (uncached first build), tokenize time of a sample on
both sides, our align time (median over samples of the best of ``--repeat`` runs, after warmup),
exact chunks per student token, the shared-boundary bound (positions where both sides' cumulative
canonical byte offsets coincide, computed here from ``convert_ids_to_tokens``, independently of
the aligner), and the reference re-implementation on the first ``--reference-samples`` samples.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import single_thread

single_thread()  # before numba / tokenizers start their pools

import argparse
import datetime
import shlex
import time
from typing import Any

import numpy as np
from common import (
    BUILTIN_TEXTS,
    DEFAULT_CORPUS,
    REPO,
    build_samples,
    encode_parts,
    load_corpus_texts,
    machine_info,
    median,
    shared_boundaries,
)
from reference_aligner import ReferenceTokenAligner, summarize

GOALS = {
    "tok_s": 2_000_000,  # student tokens/s per core
    "ratio": 300,  # ours vs reference speed
    "align_pct_tok": 5.0,  # align time as % of tokenize time
    "bound_pct": 99.0,  # exact chunks as % of the shared-boundary bound
    "table_s": 1.0,  # table build for a ~150k vocabulary
}

# the reference measurement quoted in the issue (qwen2 -> mistral-v3, 16 x 4096, this machine)
ISSUE_REFERENCE = {"ms": 579.0, "tok_s": 6900, "exact_share": 0.695, "exact_per_tok": 0.55,
                   "bound": 0.93}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help="parquet with a 'text' column (default: ../shared/corpus/dev.parquet)")
    p.add_argument("--builtin-text", action="store_true",
                   help="use a small built-in multilingual text instead of the corpus")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--pairs", default="qwen2:mistral-v3,qwen2:deepseek-v4",
                   help="student:teacher pairs of pkg: tokenizer names (or paths), comma-separated")
    p.add_argument("--reference-samples", type=int, default=4,
                   help="samples run through the (slow) reference re-implementation")
    p.add_argument("--repeat", type=int, default=3, help="runs per sample for our aligner (best)")
    p.add_argument("--max-comb-len", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="document shuffle seed")
    p.add_argument("--out", default="benchmarks/results/align.md",
                   help="markdown output (relative to the repo root); '-' for stdout only")
    return p.parse_args(argv)


def _spec(name: str) -> str:
    return name if ("/" in name or name.startswith("pkg:")) else f"pkg:{name}"


def _load_ours() -> tuple[Any, Any, str]:
    """(Aligner, build_byte_table, error) - either may be None while the module is missing."""
    Aligner = build_byte_table = None
    err = ""
    try:
        from xtok_stream.align import Aligner
    except Exception as exc:  # reported in the table
        err = f"{type(exc).__name__}: {exc}"
    try:
        from xtok_stream.align.tables import build_byte_table
    except Exception:
        pass
    return Aligner, build_byte_table, err


def _fmt(x: Any, spec: str = ",.0f") -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    return format(x, spec)


def bench_pair(student_name: str, teacher_name: str, texts: list[str], args) -> dict[str, Any]:
    from xtok_stream.tokenizers import load_tokenizer

    student = load_tokenizer(_spec(student_name))
    teacher = load_tokenizer(_spec(teacher_name))
    Aligner, build_byte_table, err = _load_ours()
    r: dict[str, Any] = {"pair": f"{student_name} -> {teacher_name}", "ours_error": err,
                         "student_vocab": len(student), "teacher_vocab": len(teacher)}

    # table build, first (uncached) build per tokenizer
    r["table_s_student"] = r["table_s_teacher"] = r["aligner_init_s"] = None
    if build_byte_table is not None:
        for side, tok in (("student", student), ("teacher", teacher)):
            t0 = time.perf_counter()
            build_byte_table(tok)
            r[f"table_s_{side}"] = time.perf_counter() - t0

    samples = build_samples(student, texts, args.samples, args.seq_len)
    tok_s, tok_t = [], []
    for smp in samples:
        t0 = time.perf_counter()
        for part in smp.parts:
            student.encode(part, add_special_tokens=False)
        t1 = time.perf_counter()
        smp.teacher_ids = encode_parts(teacher, smp.parts)
        t2 = time.perf_counter()
        tok_s.append(t1 - t0)
        tok_t.append(t2 - t1)
    n_tok = sum(len(s.student_ids) for s in samples)
    r["tokenize_ms_student"] = 1e3 * median(tok_s)
    r["tokenize_ms_teacher"] = 1e3 * median(tok_t)
    r["tokenize_ms"] = 1e3 * median([a + b for a, b in zip(tok_s, tok_t)])
    r["teacher_tokens"] = sum(len(s.teacher_ids) for s in samples)

    bound = sum(
        shared_boundaries(student, teacher, s.student_ids, s.teacher_ids, s.parts) for s in samples
    )
    r["bound_per_tok"] = bound / n_tok

    # ours
    r["ours_ms"] = r["ours_tok_s"] = r["ours_exact_per_tok"] = r["ours_bound_pct"] = None
    r["ours_chunks"] = r["ours_exact_share"] = r["align_pct_tok"] = None
    if Aligner is not None:
        try:
            t0 = time.perf_counter()
            al = Aligner(student, teacher, max_comb_len=args.max_comb_len)
            al.warmup()
            r["aligner_init_s"] = time.perf_counter() - t0
            al.align(samples[0].student_ids, samples[0].teacher_ids)  # warm caches
            times, exact, chunks = [], 0, 0
            for smp in samples:
                best = float("inf")
                for _ in range(max(1, args.repeat)):
                    t0 = time.perf_counter()
                    a = al.align(smp.student_ids, smp.teacher_ids)
                    best = min(best, time.perf_counter() - t0)
                times.append(best)
                exact += int(np.count_nonzero(np.asarray(a.exact)))
                chunks += int(len(a.exact))
            r["ours_ms"] = 1e3 * median(times)
            r["ours_tok_s"] = args.seq_len / median(times)
            r["ours_chunks"] = chunks
            r["ours_exact_share"] = exact / chunks if chunks else float("nan")
            r["ours_exact_per_tok"] = exact / n_tok
            r["ours_bound_pct"] = 100.0 * exact / bound if bound else float("nan")
            r["align_pct_tok"] = 100.0 * median(times) / (r["tokenize_ms"] / 1e3)
        except Exception as exc:  # an aligner in progress must not kill the bench
            r["ours_error"] = f"{type(exc).__name__}: {exc}"

    # reference re-implementation
    ref = ReferenceTokenAligner(student, teacher, max_comb_len=args.max_comb_len)
    n_ref = min(args.reference_samples, len(samples))
    r["ref_samples"] = n_ref
    r["ref_ms"] = r["ref_tok_s"] = r["ref_chunks"] = None
    r["ref_exact_share"] = r["ref_exact_per_tok"] = r["ratio"] = None
    if n_ref:
        times, chunks, exact = [], 0, 0
        for smp in samples[:n_ref]:
            t0 = time.perf_counter()
            out = ref.align(smp.student_ids, smp.teacher_ids)
            times.append(time.perf_counter() - t0)
            st = summarize(out)
            chunks += st["chunks"]
            exact += st["exact"]
        ref_tok = sum(len(s.student_ids) for s in samples[:n_ref])
        r["ref_ms"] = 1e3 * median(times)
        r["ref_tok_s"] = args.seq_len / median(times)
        r["ref_chunks"] = chunks
        r["ref_exact_share"] = exact / chunks if chunks else float("nan")
        r["ref_exact_per_tok"] = exact / ref_tok
        if r["ours_ms"]:
            r["ratio"] = r["ref_ms"] / r["ours_ms"]
    return r


def _ok(value: Any, goal: float, higher: bool) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ✅" if (value >= goal if higher else value <= goal) else " ❌"


def render(results: list[dict[str, Any]], args, argv: list[str], elapsed: float) -> str:
    info = machine_info()
    cols = [r["pair"] for r in results]
    rows: list[tuple[str, str, list[str]]] = []

    def row(name: str, goal: str, cells: list[str]) -> None:
        rows.append((name, goal, cells))

    g = GOALS
    row("table build, student (s, uncached)", f"< {g['table_s']:g} s @150k",
        [_fmt(r["table_s_student"], ".3f") + _ok(r["table_s_student"], g["table_s"], False)
         for r in results])
    row("table build, teacher (s, uncached)", f"< {g['table_s']:g} s @150k",
        [_fmt(r["table_s_teacher"], ".3f") + _ok(r["table_s_teacher"], g["table_s"], False)
         for r in results])
    row("Aligner() + warmup (s)", "", [_fmt(r["aligner_init_s"], ".2f") for r in results])
    row("vocab student / teacher", "", [f"{r['student_vocab']:,} / {r['teacher_vocab']:,}"
                                        for r in results])
    row("teacher tokens per 1k student", "",
        [_fmt(1000 * r["teacher_tokens"] / (args.samples * args.seq_len), ".0f") for r in results])
    row("tokenize student (ms/sample)", "", [_fmt(r["tokenize_ms_student"], ".1f") for r in results])
    row("tokenize teacher (ms/sample)", "", [_fmt(r["tokenize_ms_teacher"], ".1f") for r in results])
    row("tokenize both (ms/sample)", "", [_fmt(r["tokenize_ms"], ".1f") for r in results])
    row("**ours**: align (ms/sample, median)", "", [_fmt(r["ours_ms"], ".2f") for r in results])
    row("ours: student tokens/s per core", f"≥ {g['tok_s']/1e6:g}M",
        [_fmt(r["ours_tok_s"]) + _ok(r["ours_tok_s"], g["tok_s"], True) for r in results])
    row("ours: align as % of tokenize", f"≤ {g['align_pct_tok']:g} %",
        [_fmt(r["align_pct_tok"], ".1f") + _ok(r["align_pct_tok"], g["align_pct_tok"], False)
         for r in results])
    row("ours: chunks", "", [_fmt(r["ours_chunks"]) for r in results])
    row("ours: exact share of chunks", "",
        [_fmt(None if r["ours_exact_share"] is None else 100 * r["ours_exact_share"], ".1f")
         + (" %" if r["ours_exact_share"] is not None else "") for r in results])
    row("ours: exact chunks per student token", "", [_fmt(r["ours_exact_per_tok"], ".3f")
                                                    for r in results])
    row("shared-boundary bound per student token", "", [_fmt(r["bound_per_tok"], ".3f")
                                                        for r in results])
    row("ours: exact chunks as % of bound", f"≥ {g['bound_pct']:g} %",
        [_fmt(r["ours_bound_pct"], ".2f") + _ok(r["ours_bound_pct"], g["bound_pct"], True)
         for r in results])
    row("**reference re-impl.**: samples", "", [str(r["ref_samples"]) for r in results])
    row("reference: align (ms/sample, median)", "", [_fmt(r["ref_ms"], ".0f") for r in results])
    row("reference: student tokens/s", "", [_fmt(r["ref_tok_s"]) for r in results])
    row("reference: chunks", "", [_fmt(r["ref_chunks"]) for r in results])
    row("reference: exact share of chunks", "",
        [_fmt(None if r["ref_exact_share"] is None else 100 * r["ref_exact_share"], ".1f")
         + (" %" if r["ref_exact_share"] is not None else "") for r in results])
    row("reference: exact chunks per student token", "",
        [_fmt(r["ref_exact_per_tok"], ".3f") for r in results])
    row("**speed ratio ours / reference**", f"≥ {g['ratio']:g}×",
        [(_fmt(r["ratio"], ",.0f") + "×" if r["ratio"] else "n/a") + _ok(r["ratio"], g["ratio"], True)
         for r in results])

    head = "| metric | goal | " + " | ".join(cols) + " |"
    sep = "|---|---|" + "---:|" * len(cols)
    lines = [head, sep] + [f"| {n} | {g_} | " + " | ".join(c) + " |" for n, g_, c in rows]
    src = "built-in text" if args.builtin_text else str(args.corpus)
    cmd = "python benchmarks/bench_align.py" + ("" if not argv else " " + shlex.join(argv))
    notes = [
        "# Alignment benchmark",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {info['platform']}, Python {info['python']}, CPU {info['cpu']}, "
        f"nproc {info['nproc']}; single-threaded (numba 1 thread, TOKENIZERS_PARALLELISM=false)",
        f"- data: {src}; {args.samples} packed samples × {args.seq_len} student tokens "
        f"(seed-{args.seed} document shuffle, EOS between documents); max_comb_len "
        f"{args.max_comb_len}; wall time of the run {elapsed:.0f} s",
        "- ours: median over samples of the best of "
        f"{args.repeat} runs per sample, after `warmup()` and one untimed align; "
        "reference: `benchmarks/reference_aligner.py` (our re-implementation from the published "
        "description, one run per sample)",
        "- bound: positions where cumulative canonical byte offsets of both tokenizations "
        "coincide (EOS pairs count 1), per student token; computed from `convert_ids_to_tokens`, "
        "independently of the aligner",
        f"- issue's measurement of the real reference (qwen2 -> mistral-v3, 16 × 4096): "
        f"{ISSUE_REFERENCE['ms']:.0f} ms/sample, {ISSUE_REFERENCE['tok_s']:,} tok/s, "
        f"{100 * ISSUE_REFERENCE['exact_share']:.1f} % exact, "
        f"{ISSUE_REFERENCE['exact_per_tok']} exact chunks/token, bound {ISSUE_REFERENCE['bound']}",
    ]
    for r in results:
        if r["ours_error"]:
            notes.append(f"- ours unavailable for {r['pair']}: `{r['ours_error']}`")
    return "\n".join(notes) + "\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.builtin_text:
        texts = list(BUILTIN_TEXTS)
    else:
        if not args.corpus.exists():
            raise SystemExit(f"corpus not found: {args.corpus} (use --builtin-text)")
        texts = load_corpus_texts(args.corpus, seed=args.seed)
    results = []
    for pair in args.pairs.split(","):
        s_name, t_name = pair.strip().split(":")
        print(f"[bench_align] {s_name} -> {t_name} ...", file=sys.stderr, flush=True)
        results.append(bench_pair(s_name, t_name, texts, args))
    md = render(results, args, argv, time.perf_counter() - t_start)
    print(md)
    if args.out != "-":
        out = Path(args.out)
        if not out.is_absolute():
            out = REPO / out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
    return md


if __name__ == "__main__":
    main()
