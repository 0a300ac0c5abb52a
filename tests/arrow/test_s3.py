"""The Arrow source on object storage (moto S3 on 127.0.0.1)."""

from __future__ import annotations

import pytest
import s3fs

from tests.faultproxy import FaultProxy
from tests.helpers import assert_fails_at_once, conflicting_s3_options
from xtok_stream.config import RetryConfig
from xtok_stream.errors import SourceError
from xtok_stream.io.urls import ARROW_SUFFIXES, expand_urls
from xtok_stream.stages.read_arrow import ArrowDocumentReader
from xtok_stream.testing import check_resume


@pytest.fixture(scope="module")
def s3_arrow(s3, arrow_files):
    files, texts = arrow_files
    fs = s3fs.S3FileSystem(**s3.storage_options)
    urls = []
    for f in files:
        name = f.rsplit("/", 1)[-1]
        fs.put_file(f, f"xtok-test/arrow/{name}")
        urls.append(f"s3://xtok-test/arrow/{name}")
    return urls, texts


def read_all(urls, opts, **kw):
    r = ArrowDocumentReader(urls, lane=0, num_lanes=1, seed=4, epochs=1, shuffle_shards=True,
                            text_field="text", storage_options=opts, **kw)
    out = [(d.key, d.text) for d in r]
    r.close()
    return out


def test_prefix_listing_finds_arrow_files(s3, s3_arrow):
    urls, _ = s3_arrow
    assert expand_urls(["s3://xtok-test/arrow/"], s3.storage_options,
                       suffixes=ARROW_SUFFIXES) == sorted(urls)


def test_s3_streams_the_same_documents_as_local(s3, s3_arrow, arrow_files):
    urls, _ = s3_arrow
    assert read_all(urls, s3.storage_options, val_split=0.2) == \
        read_all(arrow_files[0], {}, val_split=0.2)


def test_s3_resume_at_every_step(s3, s3_arrow):
    urls, _ = s3_arrow
    check_resume(lambda: ArrowDocumentReader(
        urls[:3], lane=0, num_lanes=1, seed=2, epochs=2, text_field="text",
        storage_options=s3.storage_options), every=3)


def test_missing_object_names_url(s3, s3_arrow):
    url = "s3://xtok-test/arrow/nope.parquet"
    with pytest.raises(SourceError, match="nope.parquet"):
        read_all([url], dict(s3.storage_options))


# -- the Arrow reader goes through the same retry loop (RetryPolicy.run) -----------------------
@pytest.fixture(scope="module")
def s3_parquet(s3_arrow):
    """The Parquet ones of the uploaded files (ranged reads: the path RetryPolicy.run guards)."""
    return [u for u in s3_arrow[0] if u.endswith(".parquet")]


def _arrow(urls, opts, **retry):
    return ArrowDocumentReader(urls, lane=0, num_lanes=1, seed=0, epochs=1,
                               shuffle_shards=False, text_field="text", storage_options=opts,
                               retry=RetryConfig(**retry))


def test_arrow_permanent_errors_fail_at_once(s3, s3_parquet):
    """A permanent error is not retried for Arrow files either (the Arrow reader used to take
    every error for transient: a bad option cost the whole backoff, then 'after 8 attempts')."""
    reader = _arrow(s3_parquet[:1], conflicting_s3_options(s3), max_attempts=8, base_delay=1.0)
    assert_fails_at_once(reader, s3_parquet[0])


@pytest.mark.parametrize("kind", ["503", "reset", "truncate"])
def test_arrow_reads_through_faults_unchanged(s3, s3_parquet, kind):
    """Ranged reads cut short, reset or answered 503 are retried (by s3fs first, then by
    RetryPolicy.run) and the documents are the same as without faults."""
    clean = [(d.key, d.text) for d in _arrow(s3_parquet, s3.storage_options)]
    proxy = FaultProxy(s3.endpoint, rate=0.5, seed=11, kinds=(kind,))
    opts = dict(s3.storage_options, endpoint_url=proxy.endpoint,
                config_kwargs={"retries": {"max_attempts": 1}})
    reader = _arrow(s3_parquet, opts, max_attempts=12, base_delay=0.01)
    try:
        got = [(d.key, d.text) for d in reader]
    finally:
        proxy.stop()
    assert proxy.injected[kind] >= 2, proxy.injected
    assert got == clean
