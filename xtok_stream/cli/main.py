"""``xtok``: one module per subcommand; this file only registers them."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import XtokError
from . import convert, demo, eval_data, inspect, projection, run

COMMANDS = {
    "demo": demo, "convert": convert, "run": run, "eval-data": eval_data,
    "projection": projection, "inspect": inspect,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xtok", description="Streaming data for cross-tokenizer distillation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.__doc__))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command].main(args) or 0
    except XtokError as exc:
        print(f"xtok {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug or an unexpected fault: one line, not a trace
        if args.verbose:
            raise
        print(f"xtok {args.command}: error: {type(exc).__name__}: {exc} "
              "(unexpected; rerun with -v for the traceback)", file=sys.stderr)
        return 1
