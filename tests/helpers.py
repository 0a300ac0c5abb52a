"""Assertions shared by the stream tests."""

from __future__ import annotations

from collections import defaultdict


def assert_exactly_once(ledger_rows, texts: dict[str, str]) -> None:
    """Pieces ``[doc_key, char_start, char_end]`` must tile every document's text exactly once."""
    by_doc = defaultdict(list)
    for key, start, end in ledger_rows:
        by_doc[key].append((start, end))
    missing = set(texts) - set(by_doc)
    assert not missing, f"documents never seen: {sorted(missing)[:5]}"
    unknown = set(by_doc) - set(texts)
    assert not unknown, f"unknown documents: {sorted(unknown)[:5]}"
    for key, spans in by_doc.items():
        spans.sort()
        pos = 0
        for start, end in spans:
            assert start == pos, f"{key}: gap or overlap at char {pos} (next piece starts {start})"
            assert end >= start
            pos = end
        assert pos == len(texts[key]), f"{key}: covered {pos} of {len(texts[key])} chars"


def conflicting_s3_options(s3) -> dict:
    """Storage options botocore refuses (an unknown client option): a permanent error."""
    return dict(s3.storage_options, client_kwargs={"endpoint_url": s3.endpoint,
                                                   "no_such_client_option": 1})


def assert_fails_at_once(reader, url: str) -> None:
    """The first read raises a permanent SourceError naming ``url``, with no retry spent."""
    import pytest

    from xtok_stream.errors import SourceError

    with pytest.raises(SourceError, match="permanent error, not retried") as e:
        next(reader)
    assert e.value.url == url
    assert reader.metrics["retries"] == 0
