"""``xtok convert INPUT... --out DIR --precompute PIPELINE.yaml``.

Two flows, chosen by the inputs:

* INPUTs are tar shards (every one ends in ``.tar``: paths, globs, brace ranges): they are the
  pipeline's source, read as the pipeline reads them (its ``source.text_field``,
  ``on_bad_data``, ...); the YAML's own ``source.urls`` are replaced by them.
* anything else (Parquet, Arrow, JSONL, HF folders): converted first, exactly as plain
  ``xtok convert`` would, into ``DIR/text/``; those shards are the source.

Then every lane is precomputed into ``DIR/`` (``xtok_stream.convert.precompute``). The on-the-fly
stream that the precomputed one reproduces batch for batch is the pipeline YAML with
``source.urls`` = those source shards. ``--engine/--workers/--ray-address/--storage-option/
--no-progress`` apply to both steps; array-job options do not apply.
"""

from __future__ import annotations

from braceexpand import braceexpand

from ..errors import ConfigError


def is_tar_input(specs: list[str]) -> bool:
    return all(u.endswith(".tar") for s in specs for u in braceexpand(s))


def main(args) -> int:
    from ..config import load_config
    from ..convert import ConvertConfig, convert
    from ..convert.precompute import PIPELINE, check_teacher_names, precompute
    from ..io.urls import expand_urls
    from .options import storage_options

    if args.finalize or args.plan_only or args.array or args.task_index is not None \
            or args.task_count is not None:
        raise ConfigError("--precompute runs whole (one lane per task on --engine); array-job "
                          "options (--array, --task-index/--task-count, --finalize, --plan-only) "
                          "do not apply")
    config = load_config(args.precompute)
    check_teacher_names(config)  # before converting anything
    opts = storage_options(args.storage_option)
    out = args.out.rstrip("/")
    if is_tar_input(args.inputs):
        src_opts = {**config.source.storage_options, **opts}
        shards = expand_urls(args.inputs, src_opts)
    else:
        cfg = ConvertConfig(text_field=args.text_field, id_field=args.id_field,
                            min_chars=args.min_chars, samples_per_shard=args.samples_per_shard,
                            shard_size_mb=args.shard_size_mb, prefix=args.prefix,
                            split=args.split)
        s = convert(args.inputs, f"{out}/text", cfg, storage_options=opts, engine=args.engine,
                    workers=args.workers, ray_address=args.ray_address,
                    progress=not args.no_progress)
        print(s.line(f"{out}/text"))
        src_opts = opts
        shards = expand_urls([f"{out}/text/{args.prefix}-*.tar"], src_opts)
        # the converter writes the text in the 'txt' member
        config = config.model_copy(update={"source": config.source.model_copy(
            update={"text_field": "txt"})})
    config = config.model_copy(update={"source": config.source.model_copy(
        update={"urls": shards, "format": "tar", "storage_options": src_opts})})
    index = precompute(config, out, shards=shards, storage_options=opts, engine=args.engine,
                       workers=args.workers, ray_address=args.ray_address,
                       progress=not args.no_progress)
    print(f"precomputed {index['sequences']:,} sequences ({index['tokens']:,} student tokens) of "
          f"{len(shards)} source shards into {out} in {index['seconds']:.1f}s "
          f"({index['written_lanes']} of {config.num_lanes} lanes written now); "
          f"stream them with {out}/{PIPELINE}")
    return 0
