"""Stream samples out of a tar shard with their byte offsets, from any fsspec store.

Why not ``webdataset.tar_file_iterator``: it drops each member's header offset, and the offset is
what lets a cursor resume *inside* a shard with one range request instead of re-reading it from
the start. We read with the standard library's streaming ``tarfile`` (the same thing webdataset
uses underneath) and group members into samples with webdataset's ``base_plus_ext`` rule
(``dir/doc-17.txt`` and ``dir/doc-17.json`` are one sample with key ``dir/doc-17``).

A sample's *offset* is the byte offset of its first member's header; after a sample we also know
where the next one starts, which is the reader's cursor.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from webdataset.tariterators import base_plus_ext

from ..errors import SourceError

READ_BLOCK = 1 << 22  # 4 MiB range requests: few round trips, bounded memory


@dataclass(frozen=True, slots=True)
class TarSample:
    key: str
    files: dict[str, bytes]  # extension -> payload
    offset: int  # header offset of the first member
    next_offset: int | None  # header offset of the next sample, None at the end of the shard


def open_shard(url: str, storage_options: dict[str, Any], offset: int = 0):
    """Open ``url`` for streaming reads positioned at ``offset`` (a range request on stores)."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        f = fs.open(path, "rb", block_size=READ_BLOCK)
        if offset:
            f.seek(offset)
        return f
    except FileNotFoundError as exc:
        raise SourceError("shard not found", url=url) from exc
    except Exception as exc:  # noqa: BLE001 - botocore/aiohttp/OS errors all end up here
        raise SourceError(f"cannot open shard: {type(exc).__name__}: {exc}", url=url) from exc


def _members(url: str, f, base: int) -> Iterator[tuple[str, bytes, int]]:
    """(name, payload, absolute header offset) of each regular member."""
    try:
        stream = tarfile.open(fileobj=f, mode="r|")
        for info in stream:
            if not info.isreg():
                continue
            data = stream.extractfile(info).read()
            stream.members = []  # streaming: don't keep every TarInfo alive
            yield info.name, data, base + info.offset
    except SourceError:
        raise
    except (tarfile.TarError, EOFError) as exc:
        pos = base + getattr(f, "tell", lambda: 0)()
        raise SourceError(f"corrupt or truncated tar near byte {pos}: {exc}", url=url) from exc
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"read failed: {type(exc).__name__}: {exc}", url=url) from exc


def iter_samples(
    url: str, storage_options: dict[str, Any], offset: int = 0
) -> Iterator[TarSample]:
    """Samples of the shard starting at the sample whose header is at ``offset``."""
    with open_shard(url, storage_options, offset) as f:
        key: str | None = None
        files: dict[str, bytes] = {}
        start = offset
        for name, data, header in _members(url, f, offset):
            if name.startswith("__") and name.endswith("__"):
                continue  # webdataset metadata members
            k, ext = base_plus_ext(name)
            if k is None:
                raise SourceError(f"member '{name}' has no extension", url=url, key=name)
            if k != key:
                if key is not None:
                    yield TarSample(key, files, start, header)
                key, files, start = k, {}, header
            if ext in files:
                raise SourceError(f"duplicate member '{name}'", url=url, key=k)
            files[ext] = data
        if key is not None:
            yield TarSample(key, files, start, None)


def read_sample_at(url: str, storage_options: dict[str, Any], offset: int) -> TarSample:
    """Re-fetch the one sample whose first header is at ``offset`` (shuffle-buffer restore)."""
    for sample in iter_samples(url, storage_options, offset):
        return sample
    raise SourceError(f"no sample at byte {offset}", url=url)
