"""Convert Parquet / Arrow / JSONL corpora into WebDataset tar shards plus ``manifest.json``.

Each record becomes one sample ``{key}.txt``; the key is the ``--id-field`` value made tar-safe
(see ``io.shards.safe_key``) or ``{file stem}-{row}``. The same inputs give byte-identical shards.
"""

from __future__ import annotations

import json
import time

HELP = "convert Parquet/Arrow/JSONL into tar shards"


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", help="input files or URLs (globs allowed)")
    p.add_argument("--out", required=True, help="output URL prefix (folder), e.g. s3://b/shards")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default=None, help="column holding a unique document id")
    p.add_argument("--samples-per-shard", type=int, default=1000)
    p.add_argument("--prefix", default="shard", help="shard file name prefix")
    p.add_argument("--storage-option", action="append", default=[], metavar="K=V",
                   help="fsspec option for inputs and output (repeatable)")


def main(args) -> int:
    from tqdm import tqdm

    from ..errors import DecodeError
    from ..io.records_in import iter_records
    from ..io.shards import manifest, put_atomic, safe_key, write_shards
    from .options import storage_options

    opts = storage_options(args.storage_option)
    seen: set[str] = set()
    bar = tqdm(unit="doc", desc="convert", dynamic_ncols=True)

    def samples():
        for doc_id, text in iter_records(args.inputs, text_field=args.text_field,
                                         id_field=args.id_field, storage_options=opts):
            key = safe_key(doc_id)
            if key in seen:
                raise DecodeError(f"duplicate document id {doc_id!r}", url=",".join(args.inputs),
                                  key=doc_id, field=args.id_field or "row")
            seen.add(key)
            bar.update(1)
            yield {"__key__": key, "txt": text}

    t0 = time.perf_counter()
    try:
        shards = write_shards(samples(), args.out, samples_per_shard=args.samples_per_shard,
                              prefix=args.prefix, storage_options=opts)
    finally:
        bar.close()
    man = manifest(shards, sources=list(args.inputs), config={
        "text_field": args.text_field, "id_field": args.id_field,
        "samples_per_shard": args.samples_per_shard, "prefix": args.prefix})
    put_atomic(f"{args.out.rstrip('/')}/manifest.json",
               json.dumps(man, indent=1, sort_keys=True).encode(), opts)
    dt = time.perf_counter() - t0
    print(f"wrote {len(shards)} shards, {man['total_samples']:,} samples, "
          f"{man['total_bytes'] / 1e6:.1f} MB to {args.out} in {dt:.1f}s")
    return 0
