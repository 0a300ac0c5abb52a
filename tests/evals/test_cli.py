"""``xtok eval-data``: the module's parser and main, wired the way cli/main.py registers
subcommands (HELP, add_arguments, main), plus reading through an fsspec URL."""

from __future__ import annotations

import argparse

import fsspec
import pytest

from xtok_stream.cli import eval_data
from xtok_stream.errors import ConfigError
from xtok_stream.evals import humaneval_plus, mmlu

from .test_code import HUMANEVAL
from .test_mmlu import Q0, SHOT1


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="xtok")
    sub = parser.add_subparsers(dest="command", required=True)
    eval_data.add_arguments(sub.add_parser("eval-data", help=eval_data.HELP,
                                           description=eval_data.__doc__))
    return eval_data.main(parser.parse_args(["eval-data", *argv]))


def test_mmlu_one_shot_prompt_printed_exactly(mmlu_files, capsys):
    rc = run(["mmlu", "--path", str(mmlu_files["questions"]), "--few-shot-path",
              str(mmlu_files["cais"]), "--num-few-shot", "1", "--limit", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    prompt = SHOT1 + "\n\n" + Q0
    assert out == (f"=== mmlu/abstract_algebra/0 (answer: C) ===\n{prompt}\n"
                   f"=== end mmlu/abstract_algebra/0 ({len(prompt)} chars) ===\n"
                   f"1 prompt(s) from {mmlu_files['questions']}\n")


def test_humaneval_and_limit(capsys):
    assert run(["humaneval_plus", "--path", str(HUMANEVAL), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== end ") == 2
    assert "=== HumanEval/1 (entry point: separate_paren_groups) ===" in out
    assert humaneval_plus(str(HUMANEVAL), limit=1)[0].prompt in out


def test_errors(mmlu_files):
    with pytest.raises(ConfigError, match="unknown eval set 'gsm8k'"):
        run(["gsm8k", "--path", str(HUMANEVAL)])
    with pytest.raises(ConfigError, match="apply to mmlu only"):
        run(["mbpp", "--path", str(HUMANEVAL), "--num-few-shot", "3"])
    with pytest.raises(ConfigError, match="has only 2 dev examples"):
        run(["mmlu", "--path", str(mmlu_files["questions"]), "--few-shot-path",
             str(mmlu_files["cais"]), "--num-few-shot", "3"])


def test_fsspec_url_memory(mmlu_files):
    fs = fsspec.filesystem("memory")
    fs.pipe("/evals/mmlu.csv", mmlu_files["questions"].read_bytes())
    fs.pipe("/evals/cais/dev-00000.parquet", mmlu_files["dev"].read_bytes())
    fs.pipe("/evals/cais/validation-00000.parquet", mmlu_files["validation"].read_bytes())
    try:
        recs = mmlu("memory://evals/mmlu.csv", few_shot_path="memory://evals/cais/", num_few_shot=1)
    finally:
        fs.rm("/evals", recursive=True)
    assert recs[0].prompt == SHOT1 + "\n\n" + Q0  # the folder's validation file is not used
    assert recs[0].metadata["few_shot_sources"][0].endswith("/evals/cais/dev-00000.parquet: row 0")
    assert recs[0].metadata["few_shot_sources"][0].startswith("memory://")
