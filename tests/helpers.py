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
