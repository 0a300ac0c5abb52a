"""Streaming benchmark: read-only and read + pack (one tokenizer), from local disk and loopback S3.

The dev corpus (``../shared/corpus/dev.parquet``: ~9k documents, 47M characters, en/de/ja/fr/
ru/zh prose, man pages, fortunes and code) is written as tar shards (``write_shards``) to a temp
folder and to a moto S3 server on 127.0.0.1. Every measurement runs in this one process, single
threaded (TOKENIZERS_PARALLELISM=false), and is repeated ``--repeat`` times; the rounds
interleave the variants so drift on a noisy machine hits all of them alike. Medians are reported.

References, measured in the same run on the same shards:

* read-only: plain ``webdataset.WebDataset(urls, shardshuffle=False)``, text decoded to str.
  webdataset 1.0.2 has no ``s3://`` opener (its ``gopen_schemes`` cover pipe/http/gs/ais/hf),
  so for S3 it runs (a) with an fsspec/s3fs opener registered as ``gopen_schemes["s3"]`` (the
  transport we use), (b) natively over presigned http:// URLs of the objects (``gopen_curl``:
  one ``curl`` process per shard) and, with ``--aws-cli``, (c) with the documented
  ``pipe:aws s3 cp s3://... -`` URLs (one aws CLI process per shard).
* read + pack: the ceiling is the student tokenizer alone: the same
  ``backend_tokenizer.encode(text, add_special_tokens=False)`` calls over the same texts held in
  memory, nothing else. A naive webdataset + tokenize + concatenate + cut + stack loop is a
  second reference point.

    python benchmarks/bench_stream.py                      # full run (~10 min on 2 cores)
    python benchmarks/bench_stream.py --limit-docs 1000 --repeat 1 --no-s3   # quick look
    python benchmarks/bench_stream.py --builtin --no-s3 --repeat 1           # no corpus needed
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import single_thread

single_thread()  # before tokenizers / torch are imported

import argparse
import datetime
import math
import os
import shlex
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from common import DEFAULT_CORPUS, machine_info, median

from xtok_stream import testing

STUDENT = "pkg:qwen2"
BUCKET = "xtok-bench"
PREFIX = "dev"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help="parquet with columns id, text (default: %(default)s)")
    p.add_argument("--builtin", action="store_true",
                   help="use 40 documents of the embedded demo corpus instead of --corpus")
    p.add_argument("--shards", type=int, default=64, help="number of shards to write")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    p.add_argument("--limit-docs", type=int, default=None, help="first N documents only")
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", default="1,2",
                   help="extra Loader runs with these num_workers (comma list, '' for none)")
    p.add_argument("--no-s3", action="store_true", help="skip the loopback S3 measurements")
    p.add_argument("--aws-cli", action="store_true",
                   help="also time webdataset with pipe:aws s3 cp URLs (slow: one CLI per shard)")
    p.add_argument("--out", default="benchmarks/results/stream.md",
                   help="markdown file to write ('' to only print)")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# data


def load_documents(args: argparse.Namespace) -> tuple[list[dict], str]:
    """``[{"__key__", "txt"}]`` in corpus order, plus a description of the data."""
    from xtok_stream.io.shards import safe_key

    if args.builtin:
        from xtok_stream.demo_corpus import iter_documents

        rows = [{"id": d["id"], "text": d["text"]} for d in iter_documents(limit=40)]
        where = "built-in demo corpus (xtok_stream.demo_corpus.iter_documents(limit=40))"
    else:
        if not args.corpus.exists():
            raise SystemExit(
                f"corpus not found: {args.corpus}\n"
                "This benchmark reads the dev corpus (a parquet with columns id, text; "
                "../shared/corpus/dev.parquet next to the repository). Pass --corpus PATH, or "
                "--builtin for a tiny run on the embedded demo corpus."
            )
        import pyarrow.parquet as pq

        rows = pq.read_table(args.corpus, columns=["id", "text"]).to_pylist()
        where = str(args.corpus)
    if args.limit_docs is not None:
        rows = rows[: args.limit_docs]
    if not rows:
        raise SystemExit("no documents to benchmark")
    docs, seen = [], set()
    for i, r in enumerate(rows):
        key = safe_key(str(r["id"]))
        if key in seen:
            key = f"{key}-{i}"
        seen.add(key)
        docs.append({"__key__": key, "txt": r["text"]})
    return docs, where


class MotoS3(testing.MotoS3):
    """The library's loopback moto server, with the benchmark bucket and presigned URLs."""

    def start(self) -> MotoS3:
        super().start()
        self.create_bucket(BUCKET)
        return self

    def presigned(self, key: str) -> str:
        """A plain https-style GET URL for the object (the bucket is private)."""
        return self.client().generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=24 * 3600
        )


# ---------------------------------------------------------------------------------------------
# measurements: each returns counts; the runner times it


@dataclass
class Counts:
    docs: int = 0
    chars: int = 0
    tokens: int = 0


def wds_read(urls: list[str]) -> Counts:
    import webdataset as wds

    c = Counts()
    for s in wds.WebDataset(urls, shardshuffle=False):
        text = s["txt"].decode("utf-8")
        c.docs += 1
        c.chars += len(text)
    return c


def ours_read(urls: list[str], storage_options: dict) -> Counts:
    from xtok_stream.stages.read import DocumentReader

    reader = DocumentReader(urls, lane=0, num_lanes=1, seed=0, epochs=1, shuffle_shards=False,
                            storage_options=storage_options)
    c = Counts()
    for doc in reader:
        c.docs += 1
        c.chars += len(doc.text)
    reader.close()
    return c


def tokenizer_ceiling(texts: list[str], eos_per_doc: bool = True) -> Counts:
    from xtok_stream.tokenizers import load_tokenizer

    backend = load_tokenizer(STUDENT).backend_tokenizer
    c = Counts()
    for text in texts:
        enc = backend.encode(text, add_special_tokens=False)
        c.tokens += len(enc) + 1  # + the EOS the packer appends (so token counts compare)
        c.docs += 1
        c.chars += len(text)
    return c


def wds_naive_pack(urls: list[str], seq_len: int, batch_size: int) -> Counts:
    """webdataset + tokenize + concatenate + cut seq_len windows + stack batches of tensors."""
    import torch
    import webdataset as wds

    from xtok_stream.tokenizers import load_tokenizer

    tok = load_tokenizer(STUDENT)
    backend, eos = tok.backend_tokenizer, int(tok.eos_token_id)
    c = Counts()
    buf: list[int] = []
    rows: list[np.ndarray] = []

    def flush(rows: list[np.ndarray]) -> None:
        torch.from_numpy(np.stack(rows))

    for s in wds.WebDataset(urls, shardshuffle=False):
        text = s["txt"].decode("utf-8")
        buf.extend(backend.encode(text, add_special_tokens=False).ids)
        buf.append(eos)
        c.docs += 1
        c.chars += len(text)
        while len(buf) >= seq_len:
            rows.append(np.asarray(buf[:seq_len], dtype=np.int64))
            del buf[:seq_len]
            c.tokens += seq_len
            if len(rows) == batch_size:
                flush(rows)
                rows = []
    if buf:
        row = np.full(seq_len, eos, dtype=np.int64)
        row[: len(buf)] = buf
        rows.append(row)
        c.tokens += len(buf)
    if rows:
        flush(rows)
    return c


def ours_loader(urls: list[str], storage_options: dict, args: argparse.Namespace,
                num_workers: int) -> Counts:
    from xtok_stream.config import load_config
    from xtok_stream.loader import Loader

    cfg = load_config({
        "source": {"urls": urls, "storage_options": storage_options},
        "student": {"tokenizer": STUDENT, "seq_len": args.seq_len},
        "batch_size": args.batch_size, "epochs": 1, "num_workers": num_workers,
    })
    c = Counts()
    for batch in Loader(cfg, shards=urls, rank=0, world_size=1):
        c.tokens += int(batch["input_lengths"].sum())
        for row in batch["pieces"]:
            for _key, c0, c1 in row:
                c.chars += c1 - c0
    return c


# ---------------------------------------------------------------------------------------------
# runner / report


@dataclass
class Row:
    group: str  # "read-only" or "read + pack"
    name: str
    source: str
    fn: Callable[[], Counts] = field(repr=False)
    ref: str | None = None  # name of the row this one is compared with
    times: list[float] = field(default_factory=list)
    counts: Counts | None = None

    @property
    def label(self) -> str:
        return f"{self.group}: {self.name} [{self.source}]"


def run_rows(rows: list[Row], repeat: int, log: Callable[[str], None]) -> None:
    for r in range(repeat):
        for row in rows:
            t0 = time.perf_counter()
            counts = row.fn()
            dt = time.perf_counter() - t0
            row.times.append(dt)
            if row.counts is None:
                row.counts = counts
            log(f"  round {r + 1}/{repeat}  {row.label}: {dt:.2f} s")


def fmt_int(x: float) -> str:
    return "–" if not x or math.isnan(x) else f"{x:,.0f}"


def fmt_f(x: float, nd: int = 1) -> str:
    return "–" if not x or math.isnan(x) else f"{x:,.{nd}f}"


def render(rows: list[Row], text_bytes: int, head: list[str]) -> str:
    by_label = {r.label: r for r in rows}
    lines = head + [
        "",
        "| measurement | source | median s | min–max s | docs/s | text MB/s | tokens/s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    goals = []
    for r in rows:
        t = median(r.times)
        c = r.counts or Counts()
        docs_s = c.docs / t if c.docs else float("nan")
        mb_s = text_bytes / t / 1e6 if r.group == "read-only" else float("nan")
        tok_s = c.tokens / t if c.tokens else float("nan")
        ratio = ""
        if r.ref is not None:
            ref = by_label[r.ref]
            # same documents and tokens on both sides, so a speed ratio is a time ratio
            q = median(ref.times) / t
            paired = median([a / b for a, b in zip(ref.times, r.times)])
            what = f"{ref.name} [{ref.source}]" if r.group == "read-only" else ref.name
            ratio = f"{q:.2f}× {what} (per round: {paired:.2f}×)"
            goals.append((r, ref, q, paired))
        lines.append(
            f"| {r.group}: {r.name} | {r.source} | {t:.3f} | {min(r.times):.3f}–"
            f"{max(r.times):.3f} | {fmt_int(docs_s)} | {fmt_f(mb_s)} | {fmt_int(tok_s)} | "
            f"{ratio} |"
        )
    lines += ["", "Goals (ratio of medians; median of the per-round ratios in brackets):", ""]
    for r, ref, q, paired in goals:
        if r.group == "read-only":
            goal, ok = "≥ 1.00 (read-only ≥ webdataset)", q >= 1.0
        else:
            goal, ok = "→ 1.00 (the tokenizer is the ceiling)", None
        mark = "" if ok is None else (" ✅" if ok else " ❌")
        lines.append(f"- {r.label} / {ref.label}: **{q:.2f}**{mark} ({paired:.2f}) — goal {goal}")
    lines += ["", "Raw times (s), in round order:", ""]
    for r in rows:
        lines.append(f"- {r.label}: " + ", ".join(f"{x:.3f}" for x in r.times))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    docs, where = load_documents(args)
    texts = [d["txt"] for d in docs]
    n_docs = len(docs)
    n_chars = sum(len(t) for t in texts)
    text_bytes = sum(len(t.encode("utf-8")) for t in texts)
    per_shard = max(1, math.ceil(n_docs / max(1, args.shards)))

    from xtok_stream.io.shards import write_shards
    from xtok_stream.tokenizers import load_tokenizer

    load_tokenizer(STUDENT)  # build/load once, outside every timing
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    tmp = Path(tempfile.mkdtemp(prefix="xtok-bench-stream-"))
    s3: MotoS3 | None = None
    import importlib

    wgopen = importlib.import_module("webdataset.gopen")  # the module (`webdataset.gopen` is the function)
    saved_schemes = dict(wgopen.gopen_schemes)
    try:
        infos = write_shards(docs, str(tmp), samples_per_shard=per_shard)
        local = [str(tmp / i.name) for i in infos]
        shard_bytes = sum(i.bytes for i in infos)
        log(f"{n_docs} docs, {n_chars:,} chars, {text_bytes / 1e6:.1f} MB text -> "
            f"{len(local)} shards ({shard_bytes / 1e6:.1f} MB) in {tmp}")

        rows = [
            Row("read-only", "webdataset.WebDataset", "local", lambda: wds_read(local)),
            Row("read-only", "ours DocumentReader (1 lane)", "local",
                lambda: ours_read(local, {}),
                ref="read-only: webdataset.WebDataset [local]"),
        ]
        s3_urls: list[str] = []
        if not args.no_s3:
            s3 = MotoS3()
            s3.start()
            so = s3.storage_options
            write_shards(docs, f"s3://{BUCKET}/{PREFIX}", samples_per_shard=per_shard,
                         storage_options=so)
            s3_urls = [f"s3://{BUCKET}/{PREFIX}/{i.name}" for i in infos]
            http_urls = [s3.presigned(f"{PREFIX}/{i.name}") for i in infos]

            import fsspec

            def gopen_s3(url, mode="rb", bufsize=8192, **kw):
                return fsspec.open(url, mode, **so).open()

            wgopen.gopen_schemes["s3"] = gopen_s3  # webdataset 1.0.2 has no s3 opener
            with urllib.request.urlopen(http_urls[0], timeout=10) as resp:  # fail early
                resp.read(512)
            wds_s3 = "webdataset.WebDataset (fsspec s3 opener)"
            rows += [
                Row("read-only", wds_s3, "S3", lambda: wds_read(s3_urls)),
                Row("read-only", "webdataset.WebDataset (presigned http URLs, curl)", "S3",
                    lambda: wds_read(http_urls)),
            ]
            if args.aws_cli:
                if shutil.which("aws") is None:
                    raise SystemExit("--aws-cli: no aws CLI on PATH")
                os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
                os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
                os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
                pipe_urls = [f"pipe:aws --endpoint-url {s3.endpoint} s3 cp {u} -"
                             for u in s3_urls]
                rows.append(Row("read-only", "webdataset.WebDataset (pipe:aws s3 cp)", "S3",
                                lambda: wds_read(pipe_urls)))
            rows.append(Row("read-only", "ours DocumentReader (1 lane)", "S3",
                            lambda: ours_read(s3_urls, so),
                            ref=f"read-only: {wds_s3} [S3]"))

        ceiling = "read + pack: tokenizer alone (encode, texts in memory) [memory]"
        rows += [
            Row("read + pack", "tokenizer alone (encode, texts in memory)", "memory",
                lambda: tokenizer_ceiling(texts)),
            Row("read + pack", "webdataset + naive tokenize/concat/cut", "local",
                lambda: wds_naive_pack(local, args.seq_len, args.batch_size), ref=ceiling),
            Row("read + pack", "ours Loader num_workers=0", "local",
                lambda: ours_loader(local, {}, args, 0), ref=ceiling),
        ]
        if s3_urls:
            rows.append(Row("read + pack", "ours Loader num_workers=0", "S3",
                            lambda: ours_loader(s3_urls, s3.storage_options, args, 0),
                            ref=ceiling))
        for w in workers:
            rows.append(Row("read + pack", f"ours Loader num_workers={w}", "local",
                            lambda w=w: ours_loader(local, {}, args, w), ref=ceiling))

        # untimed warm-up: page cache, imports, the S3 connection pool
        wds_read(local)
        ours_read(local, {})
        if s3_urls:
            ours_read(s3_urls, s3.storage_options)
        run_rows(rows, args.repeat, log)
    finally:
        wgopen.gopen_schemes.clear()
        wgopen.gopen_schemes.update(saved_schemes)
        if s3 is not None:
            s3.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # sanity: every path saw the same documents / tokens
    for r in rows:
        c = r.counts
        if r.group == "read-only" and (c.docs, c.chars) != (n_docs, n_chars):
            raise RuntimeError(f"{r.label}: read {c.docs} docs / {c.chars} chars, "
                               f"expected {n_docs} / {n_chars}")
    want_tokens = next(r for r in rows if r.label == ceiling).counts.tokens
    for r in rows:
        if r.group == "read + pack" and r.counts.tokens != want_tokens:
            raise RuntimeError(f"{r.label}: {r.counts.tokens} tokens, ceiling saw {want_tokens}")
        if r.group == "read + pack" and r.counts.chars != n_chars:
            raise RuntimeError(f"{r.label}: {r.counts.chars} chars, expected {n_chars}")

    m = machine_info()
    cmd = "python benchmarks/bench_stream.py" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:]) else "")
    import webdataset

    head = [
        "# Streaming benchmark (read, read + pack)",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- machine: {m['platform']}, Python {m['python']}, CPU {m['cpu']}, nproc {m['nproc']}; "
        "single process unless num_workers > 0, TOKENIZERS_PARALLELISM=false; the moto S3 "
        "server is a second process on the same cores",
        f"- data: {where}; {n_docs:,} documents, {n_chars:,} characters, "
        f"{text_bytes / 1e6:.1f} MB UTF-8 text -> {len(infos)} tar shards of ≤ {per_shard} "
        f"documents ({shard_bytes / 1e6:.1f} MB) written with `write_shards` to a temp folder"
        + ("" if args.no_s3 else " and to a moto S3 bucket on 127.0.0.1"),
        f"- student {STUDENT}, seq_len {args.seq_len}, batch {args.batch_size}, epochs 1; "
        f"{want_tokens:,} tokens incl. one EOS per document; webdataset {webdataset.__version__}",
        f"- {args.repeat} runs per row, rounds interleaved; medians; text MB/s = UTF-8 bytes of "
        "the texts / time; read-only ratio = webdataset time / our time (> 1: we are faster); "
        "read + pack ratio = tokens/s / the tokenizer's tokens/s; 'per round' = median of the "
        "ratios within each round (robust to load drift on a shared machine)",
        "- read-only, ours: `DocumentReader` over all shards in one lane (what each Loader lane "
        "runs); S3 webdataset: 1.0.2 has no s3:// opener, so it runs with an fsspec/s3fs "
        "opener put in `webdataset.gopen.gopen_schemes['s3']` (same transport as ours), "
        "natively on presigned http:// URLs (its `gopen_curl`, one curl per shard)"
        + (" and on `pipe:aws --endpoint-url ... s3 cp s3://... -` URLs (one aws CLI per "
           "shard)" if args.aws_cli else ""),
        f"- wall time of the run: {time.perf_counter() - t_start:.0f} s",
    ]
    table = render(rows, text_bytes, head)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        log(f"wrote {out}")
    return table


if __name__ == "__main__":
    main()
