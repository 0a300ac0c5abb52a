"""Print rendered eval prompts (HumanEval+, MBPP+, MMLU) exactly as the model will see them.

Each prompt is framed by ``=== {task_id} ... ===`` and ``=== end ... ===`` lines so leading and
trailing whitespace stays visible; the frames are not part of the prompt. For MMLU, ``--path``
holds the questions (simple-evals CSV or cais/mmlu) and ``--few-shot-path`` the dev/validation
examples; ``--num-few-shot K`` prepends K solved examples of the same subject.
"""

from __future__ import annotations

HELP = "print rendered HumanEval+/MBPP+/MMLU eval prompts"


def add_arguments(p) -> None:
    p.add_argument("name", help="humaneval_plus | mbpp_plus | mmlu")
    p.add_argument("--path", required=True, help="eval file, folder or glob (any fsspec URL)")
    p.add_argument("--few-shot-path", default=None,
                   help="MMLU few-shot examples (cais/mmlu dev/validation file or folder)")
    p.add_argument("--num-few-shot", type=int, default=0, help="MMLU shots per question (0)")
    p.add_argument("--few-shot-split", default="dev", choices=["dev", "validation"])
    p.add_argument("--subject", action="append", default=None,
                   help="MMLU: only this subject (repeatable)")
    p.add_argument("--limit", type=int, default=3, help="prompts to print (default 3)")
    p.add_argument("--storage-option", action="append", default=[], metavar="K=V",
                   help="fsspec option (repeatable)")


def main(args) -> int:
    from ..errors import ConfigError
    from ..evals import load_eval
    from .options import storage_options

    if args.limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {args.limit}")
    kwargs = {"storage_options": storage_options(args.storage_option), "limit": args.limit}
    mmlu_opts = {"few_shot_path": args.few_shot_path, "num_few_shot": args.num_few_shot,
                 "few_shot_split": args.few_shot_split, "subjects": args.subject}
    records = load_eval(args.name, args.path, **kwargs, **mmlu_opts)
    for rec in records:
        score = f"answer: {rec.answer}" if rec.answer else f"entry point: {rec.entry_point}"
        print(f"=== {rec.task_id} ({score}) ===")
        print(rec.prompt)
        print(f"=== end {rec.task_id} ({len(rec.prompt)} chars) ===")
    print(f"{len(records)} prompt(s) from {args.path}")
    return 0
