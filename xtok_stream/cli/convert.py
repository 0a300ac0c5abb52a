"""Convert Parquet / Arrow IPC / Feather / JSONL(.gz/.zst) files and Hugging Face
``save_to_disk`` folders into WebDataset tar shards plus ``manifest.json``.

Each record becomes one sample ``{key}.txt`` (``{key}.{FIELD}`` holding a conversation with
``--messages-field FIELD``); the key is the ``--id-field`` value made tar-safe
(see ``io.shards.safe_key``) or ``{file stem}-{row:08d}``. The conversion is planned first
(``xtok_stream.convert.plan``), so the same inputs and options give byte-identical shards
whatever the engine (``--engine local|ray``, or an array job with ``--task-index/--task-count``
followed by ``--finalize``). A re-run skips shards that are already complete.

The convert owns ``--out``: while it runs, another convert of other inputs or options is refused
(lock ``{out}/_xtok/lock.json`` naming its owner; ``--break-lock`` takes over a dead one), and
once its ``manifest.json`` is written every ``*.tar`` there that the manifest does not list is
deleted. See docs/convert.md.
"""

from __future__ import annotations

import argparse
import os

HELP = "convert Parquet/Arrow/JSONL/HF-disk datasets into tar shards"


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+",
                   help="input files, folders or URLs (globs and {a..b} ranges allowed)")
    p.add_argument("--out", required=True,
                   help="output URL prefix (folder), e.g. s3://b/shards. The convert owns it: a "
                        "second convert with other inputs/options is refused while this one "
                        "holds {out}/_xtok/lock.json, and *.tar shards that the new "
                        "manifest.json does not list are deleted; a folder with files xtok did "
                        "not write is refused")
    p.add_argument("--text-field", default="text")
    p.add_argument("--messages-field", default=None, metavar="FIELD",
                   help="conversations instead of text: this column/key (a JSON list of "
                        "{role, content}, or a Parquet/Arrow list<struct<role, content>>) is "
                        "checked and written as the {key}.FIELD member the chat readers read "
                        "(set chat.messages_field to the same name); --text-field is not read")
    p.add_argument("--id-field", default=None,
                   help="column holding a unique document id (default key: {file stem}-{row})")
    p.add_argument("--min-chars", type=int, default=0, help="drop texts shorter than this")
    p.add_argument("--split", default=None, help="split of a DatasetDict save_to_disk folder")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--samples-per-shard", type=int, default=None, help="default 1000")
    size.add_argument("--shard-size-mb", type=float, default=None,
                      help="cut a shard at the first sample that makes it reach this size")
    p.add_argument("--prefix", default="shard",
                   help="shard file name prefix (a plain name: letters, digits, . _ -)")
    p.add_argument("--max-record-mb", type=float, default=None,
                   help="largest JSONL line (one record) accepted, in MB (default 256); a longer "
                        "one is an error naming its file and line")
    p.add_argument("--storage-option", action="append", default=[], metavar="K=V",
                   help="fsspec option for inputs and output (repeatable)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--workers", type=int, default=None,
                   help="local engine: processes (default: CPUs; 1 = in this process)")
    p.add_argument("--ray-address", default=None,
                   help="ray engine: cluster address (default: the running one or a local one)")
    p.add_argument("--array", action="store_true",
                   help="array-job task: read index/count from the environment (docs/convert.md)")
    p.add_argument("--task-index", type=int, default=None, help="array-job task index I")
    p.add_argument("--task-count", type=int, default=None, help="array-job task count N")
    p.add_argument("--finalize", action="store_true",
                   help="after an array job: check every shard and write manifest.json")
    p.add_argument("--plan-only", action="store_true",
                   help="only write the plan ({out}/_xtok/plan.json), e.g. before an array job")
    p.add_argument("--verify", action="store_true",
                   help="re-hash complete shards before skipping them (default: size check)")
    p.add_argument("--break-lock", action="store_true",
                   help="take over {out}/_xtok/lock.json held by another convert that is known "
                        "to be dead (a dead one on this host is taken over without it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--shard-delay-s", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--precompute", default=None, metavar="PIPELINE.yaml",
                   help="also pack, tokenize and align with this pipeline into {out}/lane*.tar "
                        "(text shards go to {out}/text/ unless INPUTs are .tar shards); "
                        "docs/precompute.md")


def main(args) -> int:
    if args.precompute and args.messages_field:
        from ..errors import ConfigError

        raise ConfigError("--precompute has no chat mode yet: convert with --messages-field, "
                          "then stream the shards with a chat: pipeline (docs/chat.md)")
    if args.precompute:
        from .precompute import main as precompute_main

        return precompute_main(args)
    from ..convert import ConvertConfig, convert
    from ..convert.engines import task_slot
    from .options import storage_options

    cfg = ConvertConfig(text_field=args.text_field, id_field=args.id_field,
                        min_chars=args.min_chars, samples_per_shard=args.samples_per_shard,
                        shard_size_mb=args.shard_size_mb, prefix=args.prefix, split=args.split,
                        messages_field=args.messages_field,
                        **({} if args.max_record_mb is None
                           else {"max_record_mb": args.max_record_mb}))
    slot = None if args.finalize else task_slot(args.task_index, args.task_count, args.array,
                                                os.environ)
    s = convert(args.inputs, args.out, cfg, storage_options=storage_options(args.storage_option),
                engine=args.engine, workers=args.workers, ray_address=args.ray_address, slot=slot,
                finalize=args.finalize, verify=args.verify, plan_only=args.plan_only,
                progress=not args.no_progress, shard_delay_s=args.shard_delay_s,
                break_lock=args.break_lock)
    if args.plan_only:
        print(f"planned {s.planned_shards} shards for {args.out} in {s.seconds:.1f}s "
              f"({args.out.rstrip('/')}/_xtok/plan.json)")
    elif args.finalize:
        print(f"finalized {s.shards} shards, {s.samples:,} samples, {s.bytes / 1e6:.1f} MB: "
              f"{s.manifest}")
    else:
        print(s.line(args.out, slot))
    return 0
