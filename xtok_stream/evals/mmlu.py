"""MMLU questions with optional few-shot prefixes, in the two layouts the reference reads.

Layouts (picked per file from its header/columns):

* simple-evals CSV ``mmlu.csv`` and its translations ``mmlu_{LANG}.csv``: ``Question``, ``A``..``D``,
  ``Answer`` (a letter), ``Subject`` (e.g. ``abstract_algebra``); an unnamed index column is ignored.
* ``cais/mmlu`` (Parquet or CSV): ``question``, ``choices`` (a list; in CSV a JSON or Python list
  literal), ``answer`` (0-based index, or a letter), ``subject``.

Prompt format (fixed). Zero-shot (``num_few_shot=0``)::

    Question: {question}
    Options:
    A) {choice A}
    B) {choice B}
    C) {choice C}
    D) {choice D}
    Answer:

With ``num_few_shot=k`` the first k examples of the same subject from the few-shot file (file
order; the ``dev`` split, 5 per subject, or ``validation`` when asked) are rendered the same way
but ending in ``Answer: X``, and the blocks are joined by one blank line (``"\\n\\n"``) before the
question. Question and choice texts are stripped of surrounding whitespace; no trailing space or
newline follows ``Answer:``. Subjects match after lower-casing and turning runs of non-alphanumeric
characters into ``_`` ("Abstract Algebra" == "abstract_algebra"). An example whose question equals
the asked question is never used as its own shot. Fewer than k examples is a ConfigError.

``task_id`` is ``{name}/{subject}/{n}``: name ``mmlu`` (``mmlu_{LANG}`` for a translated file),
n the 0-based position of the question within its subject in file order.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, DecodeError
from .read import expand, iter_rows
from .record import EvalRecord, require

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SPLITS = ("dev", "validation")
_SIMPLE_EVALS = ("Question", "A", "B", "C", "D", "Answer", "Subject")
_LANG = re.compile(r"mmlu_([A-Za-z]{2,3}(?:[-_][A-Za-z]{2,4})?)\.csv(\.gz)?$", re.I)
_SPLIT_TOKENS = {"dev": ("dev",), "validation": ("validation", "val"), "test": ("test",),
                 "train": ("train", "auxiliary_train")}


@dataclass(frozen=True)
class Question:
    """One MMLU item in either layout, normalised."""

    question: str
    choices: tuple[str, ...]
    answer: str  # letter
    subject: str  # normalised key
    source: str  # "url: line N" / "url: row N"


def subject_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def render(q: Question, *, with_answer: bool) -> str:
    """One block of the documented format; ``with_answer`` ends it in ``Answer: X``."""
    lines = [f"Question: {q.question}", "Options:"]
    lines += [f"{LETTERS[i]}) {c}" for i, c in enumerate(q.choices)]
    lines.append(f"Answer: {q.answer}" if with_answer else "Answer:")
    return "\n".join(lines)


def build_prompt(q: Question, shots: list[Question]) -> str:
    return "\n\n".join([render(s, with_answer=True) for s in shots] + [render(q, with_answer=False)])


def _choices(value: Any, url: str, loc: str) -> tuple[str, ...]:
    if isinstance(value, str):  # cais/mmlu exported to CSV: a list literal
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError) as exc:
                raise DecodeError(f"{loc}: 'choices' is not a list literal: {value[:60]!r}",
                                  url=url, key=loc, field="choices") from exc
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= len(LETTERS):
        raise DecodeError(f"{loc}: 'choices' must be a list of 2-26 options, got {value!r:.80}",
                          url=url, key=loc, field="choices")
    return tuple(str(c).strip() for c in value)


def _letter(value: Any, n: int, field: str, url: str, loc: str) -> str:
    s = str(value).strip()
    if s.isdigit() and int(s) < n:
        return LETTERS[int(s)]
    if len(s) == 1 and s.upper() in LETTERS[:n]:
        return s.upper()
    raise DecodeError(f"{loc}: '{field}' is {value!r}, want one of {LETTERS[:n]} or 0..{n - 1}",
                      url=url, key=loc, field=field)


def _question(row: dict, url: str, loc: str) -> Question:
    if "Question" in row:  # simple-evals
        q = require(row, "Question", url, loc)
        choices = tuple(str(require(row, c, url, loc, (str, int, float))).strip() for c in "ABCD")
        answer = _letter(require(row, "Answer", url, loc, (str, int)), 4, "Answer", url, loc)
        subject = require(row, "Subject", url, loc)
    elif "question" in row:  # cais/mmlu
        q = require(row, "question", url, loc)
        choices = _choices(require(row, "choices", url, loc, (str, list, tuple)), url, loc)
        answer = _letter(require(row, "answer", url, loc, (str, int)), len(choices), "answer", url, loc)
        subject = require(row, "subject", url, loc)
    else:
        raise DecodeError(
            f"{loc}: not an MMLU record: want simple-evals fields {', '.join(_SIMPLE_EVALS)} or "
            f"cais/mmlu fields question, choices, answer, subject; has {', '.join(map(str, row))}",
            url=url, key=loc, field="question")
    return Question(q.strip(), choices, answer, subject_key(subject), f"{url}: {loc}")


def read_questions(path: str, storage_options: dict | None = None) -> list[tuple[str, Question]]:
    """``(name, Question)`` for every row of a file, folder or glob (name: mmlu / mmlu_{LANG})."""
    out = []
    for url in expand(path, storage_options):
        m = _LANG.search(url.rsplit("/", 1)[-1])
        name = f"mmlu_{m.group(1)}" if m else "mmlu"
        out += [(name, _question(row, url, loc)) for loc, row in iter_rows(url, storage_options)]
    return out


def _split_of(url: str) -> str | None:
    stem = url.rsplit("/", 1)[-1].lower()
    words = set(re.split(r"[^a-z]+", stem.split(".", 1)[0]))
    for split, tokens in _SPLIT_TOKENS.items():
        if words & set(tokens):
            return split
    return None


def few_shot_pool(path: str, split: str = "dev",
                  storage_options: dict | None = None) -> dict[str, list[Question]]:
    """Examples per subject key, in file order, from the ``split`` files under ``path``."""
    if split not in SPLITS:
        raise ConfigError(f"few_shot_split must be one of {SPLITS}, got {split!r}")
    urls = expand(path, storage_options)
    if len(urls) == 1:
        found = _split_of(urls[0])
        if found not in (None, split):
            raise ConfigError(f"few-shot file {urls[0]} looks like the '{found}' split, not "
                              f"'{split}' (set --few-shot-split / few_shot_split, or pass the "
                              f"{split} file)")
    else:
        urls = [u for u in urls if _split_of(u) == split]
        if not urls:
            raise ConfigError(f"no '{split}' files under {path} (file names must contain "
                              f"{' or '.join(_SPLIT_TOKENS[split])}; set --few-shot-split)")
    pool: dict[str, list[Question]] = defaultdict(list)
    for url in urls:
        for loc, row in iter_rows(url, storage_options):
            q = _question(row, url, loc)
            pool[q.subject].append(q)
    return dict(pool)


def select_shots(q: Question, pool: dict[str, list[Question]], k: int, *, split: str = "dev",
                 path: str = "") -> list[Question]:
    """The first ``k`` examples of ``q``'s subject, never ``q`` itself; too few is an error."""
    if k == 0:
        return []
    cands = [s for s in pool.get(q.subject, []) if s.question != q.question]
    if len(cands) < k:
        near = ", ".join(sorted(s for s in pool if s[:4] == q.subject[:4])[:5]) or "none"
        raise ConfigError(
            f"num_few_shot={k} but subject '{q.subject}' has only {len(cands)} {split} examples "
            f"in {path or 'the few-shot data'} (subjects with a similar name: {near}); lower "
            f"--num-few-shot or use another --few-shot-split")
    return cands[:k]


def mmlu(path: str, *, few_shot_path: str | None = None, num_few_shot: int = 0,
         few_shot_split: str = "dev", subjects: list[str] | None = None,
         storage_options: dict | None = None, limit: int | None = None) -> list[EvalRecord]:
    """MMLU records with the documented prompt (see the module docstring), in file order."""
    if num_few_shot < 0:
        raise ConfigError(f"num_few_shot must be >= 0, got {num_few_shot}")
    if num_few_shot and few_shot_path is None:
        raise ConfigError(f"num_few_shot={num_few_shot} needs few_shot_path (--few-shot-path): "
                          f"the cais/mmlu {few_shot_split} examples")
    pool = few_shot_pool(few_shot_path, few_shot_split, storage_options) if num_few_shot else {}
    wanted = {subject_key(s) for s in subjects} if subjects else None
    counts: dict[tuple[str, str], int] = defaultdict(int)
    out: list[EvalRecord] = []
    for name, q in read_questions(path, storage_options):
        n = counts[name, q.subject]
        counts[name, q.subject] += 1
        if wanted is not None and q.subject not in wanted:
            continue
        if limit is not None and len(out) >= limit:
            break
        shots = select_shots(q, pool, num_few_shot, split=few_shot_split, path=few_shot_path or "")
        url, _, loc = q.source.rpartition(": ")
        out.append(EvalRecord(
            task_id=f"{name}/{q.subject}/{n}",
            benchmark="mmlu",
            prompt=build_prompt(q, shots),
            answer=q.answer,
            metadata={"source": url, "location": loc, "subject": q.subject,
                      "choices": list(q.choices), "question": q.question,
                      "language": name[5:] or None, "num_few_shot": num_few_shot,
                      "few_shot_sources": [s.source for s in shots]},
        ))
    if wanted is not None and not out and limit != 0:
        raise ConfigError(f"no questions of subjects {sorted(wanted)} in {path}")
    return out
