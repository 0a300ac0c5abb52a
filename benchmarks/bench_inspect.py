"""HTML view benchmark: one 4,096-token row (Qwen2 student, Mistral v3 + DeepSeek-V4 teachers)
from the embedded stdlib corpus.

* Python: ``row_view`` + ``page`` (after a warm-up that builds the byte tables and aligners),
  median of ``--repeat``.
* Chromium (if installed): the page loaded headless; ``ready`` = ms from navigation start to the
  end of the page's script (HTML parsed, token index built), ``hover`` = ms for one delegated
  hover (highlighting partners in both sections); and the browser's CPU time for the page minus
  that for a blank page (parse + layout + script, independent of other load on the machine).

    python benchmarks/bench_inspect.py [--repeat 5] [--seq-len 4096]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _chromium_cpu(exe: str, url: str, profile: str) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"--user-data-dir={profile}", url],
                         capture_output=True, text=True, timeout=300).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seq-len", type=int, default=4096)
    args = ap.parse_args()
    from xtok_stream.config import load_config
    from xtok_stream.demo_corpus import iter_documents
    from xtok_stream.inspect import page, row_view
    from xtok_stream.io.shards import safe_key, write_shards
    from xtok_stream.loader import Loader

    tmp = Path(tempfile.mkdtemp())
    docs = ({"__key__": safe_key(d["id"]), "txt": d["text"][:6000]} for d in iter_documents(limit=40))
    write_shards(docs, str(tmp / "shards"), samples_per_shard=10)
    cfg = load_config({"source": {"urls": [str(tmp / "shards") + "/"]},
                       "student": {"tokenizer": "pkg:qwen2", "seq_len": args.seq_len},
                       "teachers": [{"tokenizer": "pkg:mistral-v3"}, {"tokenizer": "pkg:deepseek-v4"}],
                       "batch_size": 1, "num_lanes": 1, "shuffle": {"shards": False}})
    batch = next(iter(Loader(cfg)))
    row_view(batch, 0, config=cfg)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        html = page(row_view(batch, 0, config=cfg))
        times.append(time.perf_counter() - t0)
    n = int(batch["input_lengths"][0])
    teachers = [int(t["input_lengths"][0]) for t in batch["teachers"].values()]
    print(f"row: {n} student tokens, teachers {teachers}; page {len(html) / 1e6:.2f} MB; "
          f"python view+page median {statistics.median(times) * 1e3:.0f} ms")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        print("chromium not installed: browser numbers skipped")
        return
    (tmp / "row.html").write_text(html, encoding="utf-8")
    (tmp / "blank.html").write_text("<!doctype html><title>x</title>", encoding="utf-8")
    ready, hover, cpu = [], [], []
    for i in range(args.repeat):
        base, _ = _chromium_cpu(exe, f"file://{tmp}/blank.html", str(tmp / f"p{i}"))
        c, dom = _chromium_cpu(exe, f"file://{tmp}/row.html#hover=1:s:{n // 2}", str(tmp / f"q{i}"))
        ready.append(int(re.search(r'data-ready="(\d+)"', dom).group(1)))
        hover.append(float(re.search(r'data-hover-ms="([\d.]+)"', dom).group(1)))
        cpu.append(c - base)
    print(f"chromium: ready median {statistics.median(ready):.0f} ms, hover median "
          f"{statistics.median(hover):.1f} ms, page CPU over a blank page median "
          f"{statistics.median(cpu) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
