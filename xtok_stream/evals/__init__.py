"""In-training eval data: HumanEval+, MBPP+ and MMLU (optionally few-shot) as :class:`EvalRecord`
with documented, fixed prompts, plus tokenized views for the student and every teacher.

``humaneval_plus(path)``, ``mbpp_plus(path)`` and ``mmlu(path, few_shot_path=..., num_few_shot=k)``
read local paths or any fsspec URL (file, folder or glob); formats are in ``code.py`` and
``mmlu.py`` and in docs/evals.md. ``tokenize_record`` / ``EvalDataset`` encode a record for the
student and teachers and align them with the pipeline's :class:`~xtok_stream.align.Aligner`
(one per teacher) and their joint chunking. The CLI ``xtok eval-data`` prints rendered prompts.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError
from .code import humaneval_plus, mbpp_plus
from .mmlu import mmlu
from .record import EvalRecord

LOADERS = {"humaneval_plus": humaneval_plus, "mbpp_plus": mbpp_plus, "mmlu": mmlu}
_NAMES = {"humanevalplus": "humaneval_plus", "humaneval": "humaneval_plus",
          "mbppplus": "mbpp_plus", "mbpp": "mbpp_plus", "mmlu": "mmlu"}


def load_eval(name: str, path: str, **kwargs: Any) -> list[EvalRecord]:
    """Dispatch by name: ``humaneval_plus``, ``mbpp_plus`` or ``mmlu`` (also ``HumanEval+``,
    ``mbpp-plus``, ...); MMLU-only options (few-shot, subjects) are refused for the code sets."""
    key = _NAMES.get(re.sub(r"[^a-z]", "", name.lower().replace("+", "plus")))
    if key is None:
        raise ConfigError(f"unknown eval set {name!r}; known: {', '.join(LOADERS)}")
    if key != "mmlu":
        extra = [k for k in ("few_shot_path", "num_few_shot", "few_shot_split", "subjects")
                 if kwargs.pop(k, None) not in (None, 0, "dev")]
        if extra:
            raise ConfigError(f"{', '.join(extra)} apply to mmlu only, not {key}")
    return LOADERS[key](path, **kwargs)


def __getattr__(name: str) -> Any:  # torch is imported only when the views are used
    if name in ("EvalDataset", "EvalTokenizer", "TokenizedEval", "tokenize_record",
                "pipeline_tokenizers"):
        from . import tokenized

        return getattr(tokenized, name)
    raise AttributeError(name)


__all__ = ["EvalDataset", "EvalRecord", "EvalTokenizer", "LOADERS", "TokenizedEval",
           "humaneval_plus", "load_eval", "mbpp_plus", "mmlu", "pipeline_tokenizers",
           "tokenize_record"]
