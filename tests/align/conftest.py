"""Aligners over the session tokenizers of tests/conftest.py, built once."""

from __future__ import annotations

import pytest

from xtok_stream.align import Aligner


class _Short(dict):
    """Short repr: hypothesis prints fixture arguments of failing examples."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {sorted(self)}>"


class _Aligners(_Short):
    def __call__(self, student: str, teacher: str, **kw) -> Aligner:
        key = (student, teacher, tuple(sorted(kw.items())))
        if key not in self:
            self[key] = Aligner(self.toks[student], self.toks[teacher], **kw).warmup()
        return self[key]


@pytest.fixture(scope="session")
def toks(qwen2, deepseek, mistral):
    return _Short(qwen2=qwen2, deepseek=deepseek, mistral=mistral)


@pytest.fixture(scope="session")
def aligner_cache(toks):
    """aligner_cache(student, teacher, **kw) -> a warmed-up Aligner, built once per key."""
    cache = _Aligners()
    cache.toks = toks
    return cache
