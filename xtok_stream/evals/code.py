"""HumanEval+ and MBPP+ loaders (EvalPlus JSONL(.gz), its Hugging Face Parquet, plain HumanEval).

Prompt formats (fixed; the completion is appended to the prompt and then ``test`` is run):

* HumanEval(+): the record's ``prompt`` verbatim (signature + docstring, ending in a newline).
* MBPP+: EvalPlus's release already ships the docstring form and is used verbatim::

      \"\"\"
      Write a function to find the shared elements from the given two lists.
      assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))
      \"\"\"

  A plain description (the ``evalplus/mbppplus`` Parquet, original MBPP ``text``) is rendered into
  that same form: ``'\"\"\"\\n' + description.strip() + '\\n' + test_list[0] + '\\n\"\"\"\\n'``.

Scoring fields: ``entry_point`` (given, or for MBPP the first function both defined in the
solution and called by the first test) and ``test``: HumanEval's ``test`` (defines
``check(candidate)``); for MBPP the full ``test`` code when present (the Parquet's plus tests),
else EvalPlus's ``assertion``, else ``test_imports`` + ``test_list``. ``metadata`` keeps the
source URL and line, ``canonical_solution``, ``base_input``/``plus_input``/``atol`` when present.

Records (upstream field names)::

    HumanEvalPlus: task_id, prompt, canonical_solution, entry_point, test, base_input, plus_input, atol
    HumanEval:     task_id, prompt, canonical_solution, entry_point, test
    MbppPlus:      task_id ("Mbpp/2"), prompt, entry_point, canonical_solution, base_input,
                   plus_input, atol, assertion (EvalPlus release); or task_id (int), prompt, code,
                   test_imports, test_list, test (Hugging Face evalplus/mbppplus)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import DecodeError
from .read import expand, iter_rows
from .record import EvalRecord, optional, require

_EXTRA = ("base_input", "plus_input", "atol", "contract", "source_file")
_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.M)
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")


def _meta(row: dict, url: str, location: str, solution: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": url, "location": location}
    if solution is not None:
        meta["canonical_solution"] = solution
    meta.update({k: row[k] for k in _EXTRA if row.get(k) is not None})
    return meta


def _collect(path: str, storage_options: dict | None, limit: int | None,
             make: Callable[[dict, str, str], EvalRecord]) -> list[EvalRecord]:
    """Records of every row of every file under ``path``, in order, ``make(row, url, loc)``
    building each; a repeated task_id is an error naming the file and line/row."""
    out: list[EvalRecord] = []
    seen: set[str] = set()
    for url in expand(path, storage_options):
        for loc, row in iter_rows(url, storage_options):
            if limit is not None and len(out) >= limit:
                return out
            rec = make(row, url, loc)
            if rec.task_id in seen:
                raise DecodeError(f"{loc}: duplicate task_id {rec.task_id!r}", url=url, key=loc,
                                  field="task_id")
            seen.add(rec.task_id)
            out.append(rec)
    return out


def humaneval_plus(path: str, *, storage_options: dict | None = None,
                   limit: int | None = None) -> list[EvalRecord]:
    """HumanEval+ (or plain OpenAI HumanEval) records, in file order, from a file/folder/glob."""

    def make(row: dict, url: str, loc: str) -> EvalRecord:
        return EvalRecord(
            task_id=str(require(row, "task_id", url, loc, (str, int))),
            benchmark="humaneval_plus",
            prompt=require(row, "prompt", url, loc),
            entry_point=require(row, "entry_point", url, loc),
            test=require(row, "test", url, loc),
            metadata=_meta(row, url, loc, optional(row, "canonical_solution", url, loc)),
        )

    return _collect(path, storage_options, limit, make)


def _mbpp_id(value: Any) -> str:
    s = str(value)
    return s if "/" in s else f"Mbpp/{s}"


def _mbpp_tests(row: dict, url: str, loc: str) -> tuple[str, list[str]]:
    """(test code to run, the base assertions); see the module docstring for the priority."""
    tests = optional(row, "test_list", url, loc, list) or []
    if not all(isinstance(t, str) for t in tests):
        raise DecodeError(f"{loc}: 'test_list' must hold strings", url=url, key=loc, field="test_list")
    imports = optional(row, "test_imports", url, loc, list) or []
    full = optional(row, "test", url, loc) or optional(row, "assertion", url, loc)
    if full is None:
        if not tests:
            raise DecodeError(f"{loc}: no tests: needs 'test', 'assertion' or 'test_list'",
                              url=url, key=loc, field="test_list")
        full = "\n".join([*imports, *tests]) + "\n"
    if not tests:  # EvalPlus release: the base assertions are its 'assertion' lines
        tests = [ln for ln in full.splitlines() if ln.startswith("assert")]
    return full, tests


def _entry_point(row: dict, solution: str | None, tests: list[str], url: str, loc: str) -> str:
    if row.get("entry_point") is not None:
        return require(row, "entry_point", url, loc)
    defined = set(_DEF.findall(solution or ""))
    for test in tests[:1]:
        for name in _CALL.findall(test):
            if name in defined:
                return name
    raise DecodeError(f"{loc}: missing field 'entry_point' and no function of the solution is "
                      "called by the first test", url=url, key=loc, field="entry_point")


def _mbpp_prompt(row: dict, tests: list[str], url: str, loc: str) -> str:
    name = "prompt" if row.get("prompt") is not None or row.get("text") is None else "text"
    text = require(row, name, url, loc)
    if text.lstrip().startswith('"""'):
        return text  # EvalPlus release: already the docstring form
    lines = [text.strip()] + tests[:1]
    return '"""\n' + "\n".join(lines) + '\n"""\n'


def mbpp_plus(path: str, *, storage_options: dict | None = None,
              limit: int | None = None) -> list[EvalRecord]:
    """MBPP+ records (EvalPlus JSONL(.gz) or the Hugging Face Parquet), in file order."""

    def make(row: dict, url: str, loc: str) -> EvalRecord:
        task_id = _mbpp_id(require(row, "task_id", url, loc, (str, int)))
        solution = optional(row, "canonical_solution", url, loc) or optional(row, "code", url, loc)
        test, base = _mbpp_tests(row, url, loc)
        return EvalRecord(
            task_id=task_id,
            benchmark="mbpp_plus",
            prompt=_mbpp_prompt(row, base, url, loc),
            entry_point=_entry_point(row, solution, base, url, loc),
            test=test,
            metadata={**_meta(row, url, loc, solution), "test_list": base},
        )

    return _collect(path, storage_options, limit, make)
