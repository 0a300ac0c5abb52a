"""Show one row of a pipeline as the model sees it: its document pieces, and per teacher the
chunk statistics, the first chunks as aligned columns (student | teacher | exact) and the
unaligned tokens with their reasons. ``--html OUT.html`` also writes one self-contained page
(hover a token to see its partners). ``--resume STATE`` starts from a saved loader state, so
``--batch 0`` is the batch a resumed run would train on next. See docs/inspect.md.
"""

from __future__ import annotations

HELP = "show one row: student/teacher tokens, chunks, unaligned tokens (terminal or --html)"


def add_arguments(p) -> None:
    p.add_argument("pipeline", help="pipeline YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted), e.g. --set student.seq_len=2048")
    p.add_argument("--batch", type=int, default=0, metavar="N", help="batch index (from 0)")
    p.add_argument("--row", type=int, default=0, metavar="R", help="row within the batch")
    p.add_argument("--teacher", action="append", default=None, metavar="NAME",
                   help="only this teacher (repeatable; default: all)")
    p.add_argument("--html", metavar="OUT.html", help="also write the HTML view here")
    p.add_argument("--resume", metavar="STATE", help="start from a saved loader state")
    p.add_argument("--chunks", type=int, default=20, help="chunks to list per teacher")


def main(args) -> int:
    from ..config import load_config
    from ..errors import ConfigError
    from ..inspect import page, render_text, row_view
    from ..io.statefile import load_state
    from ..loader import Loader

    if args.batch < 0:
        raise ConfigError(f"--batch must be >= 0, got {args.batch}")
    config = load_config(args.pipeline, args.set)
    loader = Loader(config, rank=0, world_size=1)
    if args.resume:
        loader.load_state_dict(load_state(args.resume, config.source.storage_options))
    batch = None
    for i, b in enumerate(loader):
        if i == args.batch:
            batch = b
            break
    if batch is None:
        raise ConfigError(f"the stream ends before batch {args.batch} (--batch)")
    where = f" after the state in {args.resume}" if args.resume else ""
    view = row_view(batch, args.row, config=config, only=args.teacher,
                    title=f"batch {args.batch}{where}, row {args.row}")
    print(render_text(view, chunks=args.chunks))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(page(view))
        print(f"wrote {args.html}")
    return 0
