"""Small eval files written in the upstream schemas (simple-evals / cais/mmlu MMLU, EvalPlus and
Hugging Face MBPP+), so the loaders are tested on the real layouts without the network."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# (subject, question, [A, B, C, D], answer index): 5 dev examples per subject, as in cais/mmlu.
DEV = [
    ("abstract_algebra", "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.",
     ["0", "1", "2", "3"], 1),
    ("abstract_algebra", "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|.",
     ["True, True", "False, False", "True, False", "False, True"], 1),
    ("abstract_algebra", "Find the degree for the given field extension Q(sqrt(2)) over Q.",
     ["0", "2", "1", "3"], 1),
    ("abstract_algebra", "The symmetric group S_3 has how many elements?",
     ["3", "6", "9", "12"], 1),
    ("abstract_algebra", "Find the characteristic of the ring 2Z.",
     ["0", "3", "12", "30"], 0),
    ("high_school_geography", "Which of the following is the largest ocean?",
     ["Atlantic", "Indian", "Arctic", "Pacific"], 3),
    ("high_school_geography", "The Tropic of Cancer lies at about which latitude?",
     ["0 degrees", "23.5 degrees N", "23.5 degrees S", "66.5 degrees N"], 1),
]
VALIDATION = [
    ("abstract_algebra", "How many generators does the cyclic group Z_8 have?",
     ["2", "4", "6", "8"], 1),
]
# simple-evals questions: the first one has a multi-line question (a quoted CSV newline).
QUESTIONS = [
    ("abstract_algebra", "Let p = (1, 2, 5, 4)(2, 3) in S_5.\nFind the index of <p> in S_5.",
     ["8", "2", "24", "120"], "C"),
    ("abstract_algebra", "Find the order of the factor group Z_6/<3>.", ["2", "3", "6", "12"], "B"),
    ("high_school_geography", "  Which country has the most time zones?  ",
     ["Russia", "France", "USA", "China"], "B"),
]


def write_simple_evals_csv(path: Path, rows=QUESTIONS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["", "Question", "A", "B", "C", "D", "Answer", "Subject"])
        for i, (subject, q, ch, ans) in enumerate(rows):
            w.writerow([i, q, *ch, ans, subject])
    return path


def cais_table(rows) -> pa.Table:
    return pa.table({"question": [r[1] for r in rows], "subject": [r[0] for r in rows],
                     "choices": [r[2] for r in rows], "answer": [r[3] for r in rows]})


def write_cais_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "subject", "choices", "answer"])
        for subject, q, ch, ans in rows:
            w.writerow([q, subject, json.dumps(ch), ans])
    return path


@pytest.fixture
def mmlu_files(tmp_path):
    """questions (simple-evals CSV), a cais/mmlu folder with dev + validation Parquet."""
    cais = tmp_path / "cais" / "all"
    cais.mkdir(parents=True)
    pq.write_table(cais_table(DEV), cais / "dev-00000-of-00001.parquet")
    pq.write_table(cais_table(VALIDATION), cais / "validation-00000-of-00001.parquet")
    pq.write_table(cais_table(QUESTIONS[:1]), cais / "test-00000-of-00001.parquet")
    return {"questions": write_simple_evals_csv(tmp_path / "mmlu.csv"),
            "cais": tmp_path / "cais", "dev": cais / "dev-00000-of-00001.parquet",
            "validation": cais / "validation-00000-of-00001.parquet", "tmp": tmp_path}


# MBPP+ in EvalPlus's release layout (the docstring prompt, 'assertion', string ids) ...
MBPP_EVALPLUS = [
    {"task_id": "Mbpp/2",
     "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\n'
               'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
     "entry_point": "similar_elements",
     "canonical_solution": "\ndef similar_elements(test_tup1, test_tup2):\n"
                           "  return tuple(set(test_tup1) & set(test_tup2))\n",
     "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]]], "plus_input": [[[1, 2], [2, 3]]],
     "atol": 0, "contract": "",
     "assertion": "\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"
                  "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))\n"},
    {"task_id": "Mbpp/3",
     "prompt": '"""\nWrite a python function to identify non-prime numbers.\n'
               'assert is_not_prime(2) == False\n"""\n',
     "entry_point": "is_not_prime",
     "canonical_solution": "\nimport math\ndef is_not_prime(n):\n    if n == 1:\n        return True\n"
                           "    for i in range(2, int(math.sqrt(n))+1):\n        if n % i == 0:\n"
                           "            return True\n    return False\n",
     "base_input": [[2], [10]], "plus_input": [[1]], "atol": 0, "contract": "",
     "assertion": "\nassert is_not_prime(2) == False\nassert is_not_prime(10) == True\n"},
]
# ... and in the Hugging Face evalplus/mbppplus Parquet layout (int ids, plain prompt, test_list).
MBPP_HF = [
    {"task_id": 4, "code": "import heapq as hq\ndef heap_queue_largest(nums: list, n: int) -> list:\n"
                           "  return hq.nlargest(n, nums)",
     "prompt": "Write a function to find the n largest integers from a given list of numbers, "
               "returned in descending order.",
     "source_file": "Benchmark Questions Verification V2.ipynb", "test_imports": [],
     "test_list": ["assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65]",
                   "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75]"],
     "test": "import heapq as hq\nassert heap_queue_largest([1, 5, 3], 1) == [5]\n"},
]


@pytest.fixture
def mbpp_files(tmp_path):
    evalplus = tmp_path / "MbppPlus-v0.2.0.jsonl.gz"
    with gzip.open(evalplus, "wt", encoding="utf-8") as f:
        for rec in MBPP_EVALPLUS:
            f.write(json.dumps(rec) + "\n")
    hf = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(MBPP_HF), hf)
    return {"evalplus": evalplus, "hf": hf}
