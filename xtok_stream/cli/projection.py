"""Build or inspect projection matrices (the student x teacher vocabulary map of the loss).

``xtok projection build`` derives one from the two tokenizers' canonical bytes (exact matches,
then shortest multi-token splits; see ``xtok_stream.projection.build``) and writes our
safetensors COO, or one of the reference's torch formats with ``--format dense|sparse``.
``xtok projection info`` reads any supported file and prints its shape and row sums (sized by
``--student/--teacher`` tokenizers when given, as a reference file cannot say its vocabulary).
"""

from __future__ import annotations

import json

HELP = "build or inspect a student x teacher projection matrix"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="projection_command", required=True)
    b = sub.add_parser("build", help="derive a projection from two tokenizers' vocabularies",
                       description=__doc__)
    b.add_argument("--student", required=True, help="student tokenizer (hub name, folder, pkg:NAME)")
    b.add_argument("--teacher", required=True, help="teacher tokenizer (hub name, folder, pkg:NAME)")
    b.add_argument("--out", required=True, help="output file (.safetensors, or .pt with --format)")
    b.add_argument("--top-k", type=int, default=10,
                   help="keep at most K teacher tokens per student row (default 10)")
    b.add_argument("--max-comb-len", type=int, default=4,
                   help="longest teacher-token split of a student token (default 4)")
    b.add_argument("--n-student", type=int, default=None,
                   help="rows: the student model's vocabulary size if padded (default: tokenizer)")
    b.add_argument("--n-teacher", type=int, default=None,
                   help="columns: the teacher model's vocabulary size if padded (default: tokenizer)")
    b.add_argument("--format", choices=("safetensors", "dense", "sparse"), default="safetensors",
                   help="safetensors COO (ours), or the reference's dense top-k / sparse torch file")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    i = sub.add_parser("info", help="print a projection file's format, shape and row sums")
    i.add_argument("path")
    i.add_argument("--student", default=None,
                   help="student tokenizer: rows = len(tokenizer) (default: from the file)")
    i.add_argument("--teacher", default=None,
                   help="teacher tokenizer: columns = len(tokenizer) (default: from the file)")
    i.add_argument("--n-student", type=int, default=None, help="rows (overrides --student)")
    i.add_argument("--n-teacher", type=int, default=None, help="columns (overrides --teacher)")
    i.add_argument("--multiplier", type=float, default=1.0, help="projection_matrix_multiplier")


def _build(args) -> int:
    from ..projection import build_projection, save_projection, save_reference

    proj = build_projection(args.student, args.teacher, top_k=args.top_k,
                            max_comb_len=args.max_comb_len, n_student=args.n_student,
                            n_teacher=args.n_teacher, progress=not args.no_progress)
    if args.format == "safetensors":
        save_projection(args.out, proj, {
            "student": args.student, "teacher": args.teacher, "top_k": args.top_k,
            "max_comb_len": args.max_comb_len, **proj.meta})
    else:
        save_reference(args.out, proj, sparse=args.format == "sparse", top_k=args.top_k)
    m = proj.meta
    print(f"wrote {args.out} ({args.format}): {proj.shape[0]:,} x {proj.shape[1]:,}, "
          f"{proj.nnz:,} entries; rows exact {m['rows_exact']:,}, split {m['rows_decomposed']:,}, "
          f"greedy {m['rows_greedy']:,}, special {m['rows_special']:,}, empty {m['rows_empty']:,}; "
          f"{m['build_seconds']:.1f}s")
    return 0


def _info(args) -> int:
    import numpy as np

    from ..projection import detect_format, load_projection
    from ..tokenizers import load_tokenizer

    # A reference file only bounds the sizes from below (largest id + 1): the tokenizers know them.
    n_s, n_t = args.n_student, args.n_teacher
    if n_s is None and args.student:
        n_s = len(load_tokenizer(args.student))
    if n_t is None and args.teacher:
        n_t = len(load_tokenizer(args.teacher))
    proj = load_projection(args.path, n_student=n_s, n_teacher=n_t, multiplier=args.multiplier)
    sums = proj.row_sums()
    filled = sums[sums != 0]
    out = {"path": args.path, "format": detect_format(args.path), "shape": list(proj.shape),
           "nnz": proj.nnz, "rows_filled": int(filled.size),
           "row_sum_min": float(filled.min()) if filled.size else None,
           "row_sum_max": float(filled.max()) if filled.size else None,
           "max_per_row": int(np.bincount(proj.rows).max()) if proj.nnz else 0,
           "meta": proj.meta}
    print(json.dumps(out, indent=1, default=str))
    return 0


def main(args) -> int:
    return {"build": _build, "info": _info}[args.projection_command](args)
