"""Stream batches from a pipeline YAML; under torchrun every rank runs.

``--dump PATH`` writes ``PATH.rank{R}``: one JSON line per batch,
``{"rank", "step", "sequences": [{"pieces": [[doc_key, char_start, char_end], ...], "source": i,
"input_ids_sha256": hex, "teachers": {name: hex}}]}`` (real rows only; the student hash is over
the row's real tokens as little-endian int64, a teacher's over its real tokens and its
student/teacher chunk maps). ``--save-state`` writes the loader state of all ranks after the last batch;
``--resume`` continues from such a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

HELP = "stream batches from a pipeline config"


def add_arguments(p) -> None:
    p.add_argument("pipeline", help="pipeline YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted), e.g. --set student.seq_len=2048")
    p.add_argument("--max-batches", type=int, default=None, help="stop after N batches per rank")
    p.add_argument("--save-state", metavar="PATH", help="write the loader state here at the end")
    p.add_argument("--save-every", type=int, default=None, metavar="N",
                   help="also write it every N batches (needs --save-state), as a trainer would")
    p.add_argument("--resume", metavar="PATH", help="resume from a saved loader state")
    p.add_argument("--dump", metavar="PATH", help="write a JSON-lines ledger to PATH.rank{R}")
    p.add_argument("--progress", action="store_true",
                   help="show progress (bar on a terminal, else lines): bytes, ETA, tok/s, exact")


def _init_distributed():
    """Join the torchrun process group if launched by torchrun (the CLI is the boundary that
    reads the environment; the library takes rank and world size as arguments)."""
    import torch
    import torch.distributed as dist

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return True
    return False


def dump_line(rank: int, step: int, batch: dict) -> str:
    ids = batch["input_ids"].numpy()
    lengths = batch["input_lengths"].numpy()
    mask = batch["sample_mask"].numpy()
    seqs = []
    for b in range(ids.shape[0]):
        if mask[b] == 0:
            continue
        row = np.ascontiguousarray(ids[b, : lengths[b]], dtype="<i8")
        seq = {"pieces": batch["pieces"][b], "source": int(batch["source_ids"][b]),
               "input_ids_sha256": hashlib.sha256(row.tobytes()).hexdigest()}
        if "teachers" in batch:
            seq["teachers"] = {name: _teacher_hash(t, b) for name, t in batch["teachers"].items()}
        seqs.append(seq)
    return json.dumps({"rank": rank, "step": step, "sequences": seqs}, ensure_ascii=False)


def _teacher_hash(t: dict, b: int) -> str:
    n = int(t["input_lengths"][b])
    h = hashlib.sha256(np.ascontiguousarray(t["input_ids"][b, :n].numpy(), dtype="<i8").tobytes())
    h.update(t["student_chunk_id"][b].numpy().astype("<i4").tobytes())
    h.update(t["teacher_chunk_id"][b, :n].numpy().astype("<i4").tobytes())
    return h.hexdigest()


def main(args) -> int:
    from ..config import load_config
    from ..io.statefile import load_state, save_state
    from ..loader import Loader

    config = load_config(args.pipeline, args.set)
    if args.save_every and not args.save_state:
        from ..errors import ConfigError

        raise ConfigError("--save-every needs --save-state PATH")
    distributed = _init_distributed()
    loader = Loader(config)
    opts = (config.source or config.sources[0]).storage_options  # a mixture: its first source
    if args.resume:
        loader.load_state_dict(load_state(args.resume, opts))
    dump = open(f"{args.dump}.rank{loader.rank}", "w") if args.dump else None
    bar = finished = None
    if args.progress and loader.rank == 0:
        from ..progress import StreamProgress

        bar = StreamProgress(loader, max_batches=args.max_batches)
    batches = tokens = 0
    t0 = time.perf_counter()

    def checkpoint():
        state = loader.global_state_dict()  # collective: every rank calls it
        if dump:
            dump.flush()  # the ledger up to the state's step is on disk before the state
            os.fsync(dump.fileno())
        if loader.rank == 0:
            save_state(args.save_state, state, opts)

    try:
        if args.max_batches != 0:
            for batch in loader:
                batches += 1
                tokens += int(batch["input_lengths"].sum())
                if dump:
                    dump.write(dump_line(loader.rank, loader.step, batch) + "\n")
                if bar:
                    bar.update(batch)
                if args.max_batches is not None and batches >= args.max_batches:
                    break
                if args.save_every and batches % args.save_every == 0:
                    checkpoint()
            else:
                finished = True
        elapsed = time.perf_counter() - t0
        if args.save_state:
            checkpoint()
        if loader.rank == 0:
            m = loader.metrics
            skipped = sum(m["skipped"].values())
            print(f"rank 0: {batches} batches, {tokens:,} tokens in {elapsed:.2f}s "
                  f"({tokens / max(elapsed, 1e-9):,.0f} tokens/s); {m['retries']} read retries, "
                  f"{skipped} bad samples skipped")
            if "sources" in m:  # a mixture: per-source totals of rank 0's lanes
                print("rank 0 sources: " + ", ".join(
                    f"{n} {v['sequences']} sequences / {v['tokens']:,} tokens (epoch {v['epoch']})"
                    for n, v in m["sources"].items()))
    finally:
        if dump:
            dump.close()
        if bar:
            bar.close(finished)
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0
