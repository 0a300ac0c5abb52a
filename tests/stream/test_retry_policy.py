"""Only transient faults are retried (an allowlist), permanent ones fail at once naming the URL,
and a frozen endpoint is cut off by ``source.retry.read_timeout`` and resumed at the byte."""

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.faultproxy import FaultProxy
from tests.helpers import assert_fails_at_once, conflicting_s3_options
from xtok_stream.config import RetryConfig
from xtok_stream.errors import SourceError
from xtok_stream.io.retry import TRANSIENT_ERRNOS, TruncatedRead, is_transient
from xtok_stream.stages.read import DocumentReader

PERMANENT_ERRNOS = sorted(set(errno.errorcode) - TRANSIENT_ERRNOS)


@given(code=st.sampled_from(PERMANENT_ERRNOS))
def test_permanent_errnos_are_not_retried(code):
    assert not is_transient(OSError(code, "x"))
    wrapped = OSError(code, "wrapped")
    wrapped.__cause__ = ValueError("a 400 answer")
    assert not is_transient(wrapped)


@given(code=st.sampled_from(sorted(TRANSIENT_ERRNOS)))
def test_transient_errnos_are_retried(code):
    assert is_transient(OSError(code, "x"))


@pytest.mark.parametrize("exc", [TypeError("got multiple values for 'endpoint_url'"),
                                 ValueError("bad option"), KeyError("key"),
                                 FileNotFoundError("gone"), PermissionError("denied")])
def test_programming_and_permanent_errors_are_not_transient(exc):
    assert not is_transient(exc)


@pytest.mark.parametrize("exc", [ConnectionResetError(), TimeoutError(), TruncatedRead("cut")])
def test_network_faults_are_transient(exc):
    assert is_transient(exc)


def _reader(shards, opts, **retry):
    return DocumentReader(shards, lane=0, num_lanes=1, seed=0, epochs=1, shuffle_shards=False,
                          storage_options=opts, retry=RetryConfig(**retry))


def test_conflicting_storage_options_fail_at_once(s3, s3_shards):
    shards, _ = s3_shards
    reader = _reader(shards[:1], conflicting_s3_options(s3), max_attempts=8, base_delay=1.0)
    assert_fails_at_once(reader, shards[0])


def test_a_frozen_endpoint_times_out_and_resumes(s3, s3_shards):
    shards, texts = s3_shards
    proxy = FaultProxy(s3.endpoint, rate=0.5, seed=3, kinds=("stall",), stall_s=60)
    opts = dict(s3.storage_options, endpoint_url=proxy.endpoint)
    reader = _reader(shards[:2], opts, max_attempts=20, base_delay=0.01, read_timeout=0.5)
    try:
        docs = {d.key: d.text for d in reader}
    finally:
        proxy.stop()
    assert proxy.injected["stall"] > 0
    assert reader.metrics["retries"] >= proxy.injected["stall"] // 2
    assert docs == {k: texts[k] for k in docs} and len(docs) == 20



def test_the_one_retry_loop_counts_backs_off_and_names_what_failed():
    import random

    from xtok_stream.io.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=4, base_delay=0.0)
    calls, reopened = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TruncatedRead("cut")
        return "data"

    rng = random.Random(0)
    assert policy.run(flaky, url="s3://b/k", what="read at byte 7", rng=rng,
                      between=lambda: reopened.append(1)) == "data"
    assert (len(calls), len(reopened), policy.counters["retries"]) == (3, 2, 2)

    with pytest.raises(SourceError, match="read at byte 7 failed after 4 attempts") as e:
        policy.run(lambda: (_ for _ in ()).throw(ConnectionResetError()), url="s3://b/k",
                   what="read at byte 7", rng=rng)
    assert e.value.url == "s3://b/k" and policy.counters["retries"] == 6

    with pytest.raises(SourceError, match="permanent error, not retried"):
        policy.run(lambda: {}["missing"], url="s3://b/k", what="size lookup", rng=rng)
    assert policy.counters["retries"] == 6  # not retried
