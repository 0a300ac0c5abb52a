"""MMLU: both layouts, literal zero/one/five-shot prompts, splits, subjects and clear errors."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from xtok_stream.errors import ConfigError, DecodeError
from xtok_stream.evals import load_eval, mmlu

from .conftest import DEV, QUESTIONS, cais_table, write_cais_csv, write_simple_evals_csv

Q0 = ("Question: Let p = (1, 2, 5, 4)(2, 3) in S_5.\nFind the index of <p> in S_5.\n"
      "Options:\nA) 8\nB) 2\nC) 24\nD) 120\nAnswer:")
SHOT1 = ("Question: Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\n"
         "Options:\nA) 0\nB) 1\nC) 2\nD) 3\nAnswer: B")
FIVE_SHOT = (
    "Question: Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\n"
    "Options:\nA) 0\nB) 1\nC) 2\nD) 3\nAnswer: B\n"
    "\n"
    "Question: Statement 1 | If aH is an element of a factor group, then |aH| divides |a|.\n"
    "Options:\nA) True, True\nB) False, False\nC) True, False\nD) False, True\nAnswer: B\n"
    "\n"
    "Question: Find the degree for the given field extension Q(sqrt(2)) over Q.\n"
    "Options:\nA) 0\nB) 2\nC) 1\nD) 3\nAnswer: B\n"
    "\n"
    "Question: The symmetric group S_3 has how many elements?\n"
    "Options:\nA) 3\nB) 6\nC) 9\nD) 12\nAnswer: B\n"
    "\n"
    "Question: Find the characteristic of the ring 2Z.\n"
    "Options:\nA) 0\nB) 3\nC) 12\nD) 30\nAnswer: A\n"
    "\n"
    "Question: Let p = (1, 2, 5, 4)(2, 3) in S_5.\nFind the index of <p> in S_5.\n"
    "Options:\nA) 8\nB) 2\nC) 24\nD) 120\nAnswer:"
)


def test_zero_shot_simple_evals(mmlu_files):
    recs = mmlu(str(mmlu_files["questions"]))
    assert [r.task_id for r in recs] == ["mmlu/abstract_algebra/0", "mmlu/abstract_algebra/1",
                                         "mmlu/high_school_geography/0"]
    assert recs[0].prompt == Q0
    assert [r.answer for r in recs] == ["C", "B", "B"]
    # surrounding whitespace of the question is stripped; no trailing space after "Answer:"
    assert recs[2].prompt == ("Question: Which country has the most time zones?\nOptions:\n"
                              "A) Russia\nB) France\nC) USA\nD) China\nAnswer:")
    assert recs[0].metadata["subject"] == "abstract_algebra"
    assert recs[0].metadata["choices"] == ["8", "2", "24", "120"]
    assert recs[0].metadata["location"] == "line 2" and recs[1].metadata["location"] == "line 4"


def test_one_shot_literal(mmlu_files):
    recs = mmlu(str(mmlu_files["questions"]), few_shot_path=str(mmlu_files["cais"]), num_few_shot=1)
    assert recs[0].prompt == SHOT1 + "\n\n" + Q0
    assert recs[1].prompt.startswith(SHOT1 + "\n\nQuestion: Find the order of the factor group")
    geo = recs[2].prompt.split("\n\n")
    assert geo[0].startswith("Question: Which of the following is the largest ocean?")
    assert geo[0].endswith("Answer: D") and geo[1].endswith("\nAnswer:")
    assert recs[0].metadata["few_shot_sources"] == [
        f"{mmlu_files['dev']}: row 0"]


def test_five_shot_literal_and_deterministic(mmlu_files):
    kw = dict(few_shot_path=str(mmlu_files["dev"]), num_few_shot=5, subjects=["Abstract Algebra"])
    recs = mmlu(str(mmlu_files["questions"]), **kw)
    assert len(recs) == 2
    assert recs[0].prompt == FIVE_SHOT
    assert recs[0].prompt.count("Question: ") == 6
    assert [r.prompt for r in mmlu(str(mmlu_files["questions"]), **kw)] == [r.prompt for r in recs]


def test_k0_equals_zero_shot_even_with_few_shot_path(mmlu_files):
    a = mmlu(str(mmlu_files["questions"]))
    b = mmlu(str(mmlu_files["questions"]), few_shot_path=str(mmlu_files["cais"]), num_few_shot=0)
    assert [r.prompt for r in a] == [r.prompt for r in b]


def test_validation_split(mmlu_files):
    recs = mmlu(str(mmlu_files["questions"]), few_shot_path=str(mmlu_files["cais"]),
                num_few_shot=1, few_shot_split="validation", subjects=["abstract_algebra"])
    assert recs[0].prompt == ("Question: How many generators does the cyclic group Z_8 have?\n"
                              "Options:\nA) 2\nB) 4\nC) 6\nD) 8\nAnswer: B\n\n" + Q0)


def test_more_shots_than_exist_is_an_error(mmlu_files):
    with pytest.raises(ConfigError, match=r"num_few_shot=5 but subject 'high_school_geography' "
                                          r"has only 2 dev examples"):
        mmlu(str(mmlu_files["questions"]), few_shot_path=str(mmlu_files["cais"]), num_few_shot=5)
    with pytest.raises(ConfigError, match="has only 1 validation examples"):
        mmlu(str(mmlu_files["questions"]), few_shot_path=str(mmlu_files["cais"]), num_few_shot=2,
             few_shot_split="validation", subjects=["abstract_algebra"])
    with pytest.raises(ConfigError, match="needs few_shot_path"):
        mmlu(str(mmlu_files["questions"]), num_few_shot=1)
    with pytest.raises(ConfigError, match="looks like the 'test' split"):
        mmlu(str(mmlu_files["questions"]), num_few_shot=1,
             few_shot_path=str(mmlu_files["cais"] / "all" / "test-00000-of-00001.parquet"))


def test_question_never_its_own_shot(mmlu_files, tmp_path):
    # the questions file doubles as the pool: each question gets the *other* one as its shot
    qs = write_cais_csv(tmp_path / "dev.csv", [(s, q, c, "ABCD".index(a)) for s, q, c, a in QUESTIONS[:2]])
    recs = mmlu(str(qs), few_shot_path=str(qs), num_few_shot=1)
    assert recs[0].prompt.startswith("Question: Find the order of the factor group Z_6/<3>.")
    assert recs[1].prompt.startswith("Question: Let p = (1, 2, 5, 4)(2, 3) in S_5.")


def test_cais_layouts_for_questions_and_translated_ids(mmlu_files, tmp_path):
    parquet = tmp_path / "q.parquet"
    pq.write_table(cais_table([(s, q, c, "ABCD".index(a)) for s, q, c, a in QUESTIONS]), parquet)
    csv_dev = write_cais_csv(tmp_path / "abstract_algebra_dev.csv", DEV[:5])
    from_parquet = mmlu(str(parquet), few_shot_path=str(csv_dev), num_few_shot=1,
                        subjects=["abstract_algebra"])
    assert from_parquet[0].prompt == SHOT1 + "\n\n" + Q0
    fr = write_simple_evals_csv(tmp_path / "mmlu_FR-FR.csv")
    recs = load_eval("MMLU", str(fr), limit=1)
    assert recs[0].task_id == "mmlu_FR-FR/abstract_algebra/0"
    assert recs[0].metadata["language"] == "FR-FR"


def test_missing_field_names_file_line_field(tmp_path):
    bad = tmp_path / "mmlu.csv"
    bad.write_text('"",Question,A,B,C,D,Subject\n0,"two\nlines",a,b,c,d,x\n1,q,a,b,c,d,x\n')
    with pytest.raises(DecodeError) as err:
        mmlu(str(bad))
    assert err.value.field == "Answer" and err.value.key == "line 2"
    assert str(bad) in str(err.value) and "missing field 'Answer'" in str(err.value)
    bad.write_text("question,subject,choices,answer\nq,x,\"['a', 'b']\",7\n")
    with pytest.raises(DecodeError, match="line 2: 'answer' is '7'") as err:
        mmlu(str(bad))
    assert err.value.field == "answer"
    bad.write_text("text,label\nq,1\n")
    with pytest.raises(DecodeError, match="not an MMLU record"):
        mmlu(str(bad))


def test_docs_one_shot_example_is_what_the_loader_renders(mmlu_files):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "evals.md").read_text()
    block = doc.split("A 1-shot prompt:\n\n```\n", 1)[1].split("\n```", 1)[0]
    recs = mmlu(str(mmlu_files["questions"]), few_shot_path=str(mmlu_files["dev"]), num_few_shot=1)
    assert recs[1].prompt == block
