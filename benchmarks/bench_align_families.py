"""Per-family aligner table (issue 11): every ordered pair of nine tokenizer families.

Samples: corpus documents in a fixed seed-shuffled order joined until each sample holds about
``--chars`` characters (documents separated by each side's EOS). For every pair, text-space
alignment (``Aligner.align_text`` with both sides' ``offset_mapping``) is checked against the
oracle of ``tests/align/text_oracle.py`` (from the tokenizers' own offsets, independent of the
aligner) and compared with ids-only byte alignment (``Aligner.align``):

* ``bound %``: exact chunks covering text / the text-space shared-boundary bound (chunks between
  the cuts both sides share that cover text and hold no <unk> or special parsed from literal
  text; ``text_oracle.exact_bound``); the bytes-only column counts ``align``'s exact chunks
  against the same bound (byte-level cuts inside a character can put it above 100);
* ``false exact``: exact chunks whose two sides cover different original text (must be 0);
* ``outside exact``: characters of the text no exact chunk covers on the student side, against
  ``outside bound``: characters covered by tokens no exact chunk may hold (<unk>, literal
  specials, either side) or by no student token;
* ``tok/s``: student tokens per second of ``align_text`` (offsets conversion included), best of
  ``--repeat``, one thread.

    .venv/bin/python benchmarks/bench_align_families.py              # writes results/align_families.md
    .venv/bin/python benchmarks/bench_align_families.py --builtin-text --samples 1 --out -
    .venv/bin/python benchmarks/bench_align_families.py --families qwen2,mistral-v3,unigram
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "align"))

from common import single_thread

single_thread()

import argparse
import datetime
import shlex
import time

import numpy as np
from common import BUILTIN_TEXTS, DEFAULT_CORPUS, REPO, load_corpus_texts, machine_info
from families import HELD_OUT, held_out
from text_oracle import encode_docs, exact_bound, exact_text_chunks, false_exact

from xtok_stream.align import Aligner, Role, byte_table
from xtok_stream.tokenizers import load_tokenizer

BASE = {"qwen2": "pkg:qwen2", "deepseek-v4": "pkg:deepseek-v4", "mistral-v3": "pkg:mistral-v3"}


def samples_of(texts: list[str], n: int, chars: int) -> list[list[str]]:
    out, cur, size = [], [], 0
    for t in texts:
        cur.append(t[:chars])
        size += len(cur[-1])
        if size >= chars:
            out.append(cur)
            cur, size = [], 0
            if len(out) == n:
                break
    return out or [cur]


def outside(text, s, t, stok, ttok, al) -> tuple[int, int]:
    n = len(text)
    cover = np.zeros(n, bool)
    for (s0, s1), ex in zip(al.student_spans.tolist(), al.exact.tolist()):
        if ex:
            for a, b in s.offsets[s0:s1].tolist():
                cover[a:b] = True
    bad = np.zeros(n, bool)
    anyc = np.zeros(n, bool)
    for enc, tok in ((s, stok), (t, ttok)):
        role = byte_table(tok).role
        for tid, (a, b) in zip(enc.ids.tolist(), enc.offsets.tolist()):
            if enc is s:
                anyc[a:b] = True
            if role[tid] != Role.TEXT and b > a:
                bad[a:b] = True
    return int((~cover).sum()), int((bad | ~anyc).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--builtin-text", action="store_true")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--chars", type=int, default=16000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "align_families.md"))
    ap.add_argument("--families", default="",
                    help="comma-separated subset of the families (default: all nine)")
    args = ap.parse_args(argv)
    texts = BUILTIN_TEXTS if args.builtin_text or not args.corpus.exists() else load_corpus_texts(args.corpus)
    samples = samples_of(texts, args.samples, args.chars)
    only = [f for f in args.families.split(",") if f]
    unknown = sorted(set(only) - set(BASE) - set(HELD_OUT))
    if unknown:
        ap.error(f"--families: unknown {unknown}; choose from {sorted(BASE) + sorted(HELD_OUT)}")
    toks = {k: load_tokenizer(v) for k, v in BASE.items() if not only or k in only}
    toks.update({k: held_out(k) for k in HELD_OUT if not only or k in only})
    enc = {(k, i): encode_docs(tok, docs) for k, tok in toks.items() for i, docs in enumerate(samples)}
    rows = []
    for sn, stok in toks.items():
        for tn, ttok in toks.items():
            if sn == tn:
                continue
            a = Aligner(stok, ttok).warmup()
            ex = bound = fe = out_ex = out_b = n_chars = n_tok = 0
            ex_bytes = 0
            best = []
            for i in range(len(samples)):
                text, s = enc[sn, i]
                _, t = enc[tn, i]
                ts = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    al = a.align_text(text, s.ids, t.ids, s.offsets, t.offsets)
                    ts.append(time.perf_counter() - t0)
                best.append(min(ts))
                ab = a.align(s.ids, t.ids)
                ex += exact_text_chunks(al, s)
                ex_bytes += exact_text_chunks(ab, s)
                bound += exact_bound(text, s, t, stok, ttok)
                fe += len(false_exact(text, s, t, al))
                o1, o2 = outside(text, s, t, stok, ttok, al)
                out_ex, out_b = out_ex + o1, out_b + o2
                n_chars, n_tok = n_chars + len(text), n_tok + len(s.ids)
            rows.append((sn, tn, a.modes["student"], a.modes["teacher"], 100 * ex / max(bound, 1),
                         fe, 100 * out_ex / n_chars, 100 * out_b / n_chars, n_tok / sum(best),
                         100 * ex_bytes / max(bound, 1)))
            print(*rows[-1], flush=True)
    lines = [
        "# Aligner across tokenizer families (text space)", "",
        f"Command: `{shlex.join(['.venv/bin/python', *sys.argv])}`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: "
        f"{machine_info()}  ",
        f"Data: {len(samples)} samples of ~{args.chars} characters "
        f"({'builtin texts' if texts is BUILTIN_TEXTS else args.corpus.name}); student tokens: "
        f"{n_tok} per pair for the last row.", "",
        "| student | teacher | modes | bound % | false exact | outside exact % | outside bound % "
        "| student tok/s | bytes only (`align`): bound % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} / {r[3]} | {r[4]:.2f} | {r[5]} | {r[6]:.2f} | "
                     f"{r[7]:.2f} | {r[8] / 1e6:.2f}M | {r[9]:.1f} |")
    shares = [r[4] for r in rows]
    lines += ["", f"Pairs: {len(rows)}; bound % min {min(shares):.2f}, median "
              f"{float(np.median(shares)):.2f}; false exact total {sum(r[5] for r in rows)}; "
              f"student tok/s min "
              f"{min(r[8] for r in rows) / 1e6:.2f}M.", ""]
    text = "\n".join(lines)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
