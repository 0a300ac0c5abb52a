"""Stream samples out of a tar shard with their byte offsets, from any fsspec store.

Why not ``webdataset.tar_file_iterator``: it drops each member's header offset, and the offset is
what lets a cursor resume *inside* a shard with one range request instead of re-reading it from
the start. We read with the standard library's streaming ``tarfile`` (the same thing webdataset
uses underneath) and group members into samples with webdataset's ``base_plus_ext`` rule
(``dir/doc-17.txt`` and ``dir/doc-17.json`` are one sample with key ``dir/doc-17``).

A sample's *offset* is the byte offset of its first member's header; after a sample we also know
where the next one starts, which is the reader's cursor. Reads go through
:mod:`~xtok_stream.io.retry`, which retries transient faults and resumes at the broken byte.

Members larger than ``max_member_bytes`` are not read into memory: the sample carries a
:class:`Oversized` marker with the size instead, and the reader applies its policy.

*Odd members* -- a symlink or hardlink, a name without an extension, a second member with the
same key and extension -- carry no text we can attribute to a sample. Each one is passed to the
``odd_member`` callback (the reader's ``on_bad_data.odd_member`` policy: raise, or count and
drop it); without one they raise. Directories and webdataset ``__meta__`` members are ignored.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from webdataset.tariterators import base_plus_ext

from ..errors import SourceError
from .retry import RetryPolicy, open_resilient


class CorruptShardError(SourceError):
    """The tar stream is corrupt or truncated (the shard itself is bad, not the connection).

    ``at`` is where the next header should have started: the samples before it are whole."""

    def __init__(self, message: str, *, url: str | None = None, at: int = 0):
        super().__init__(message, url=url)
        self.at = at


@dataclass(frozen=True, slots=True)
class Oversized:
    """Stands in for a member payload too large to load (its data was skipped unread)."""

    size: int
    data_offset: int  # absolute byte offset of the payload in the shard (for windowed reads)


@dataclass(frozen=True, slots=True)
class _Link:
    """A link member (no payload of its own)."""

    what: str


def _raise(error: SourceError) -> None:
    raise error


@dataclass(frozen=True, slots=True)
class TarSample:
    key: str
    files: dict[str, bytes | Oversized]  # extension -> payload
    offset: int  # header offset of the first member
    next_offset: int | None  # header offset of the next sample, None at the end of the shard


def open_shard(url: str, storage_options: dict[str, Any], offset: int = 0,
               retry: RetryPolicy | None = None):
    """Open ``url`` for streaming reads positioned at ``offset`` (a range request on stores)."""
    try:
        return open_resilient(url, storage_options, offset, retry)
    except SourceError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            raise SourceError("shard not found", url=url) from exc.__cause__
        raise


def _members(url: str, f, base: int, max_member_bytes: int | None
             ) -> Iterator[tuple[str, bytes | Oversized, int]]:
    """(name, payload, absolute header offset) of each regular member."""
    name, header, after = "", base, base
    try:
        stream = tarfile.open(fileobj=f, mode="r|")
        for info in stream:
            after = base + info.offset_data + -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if info.issym() or info.islnk():
                kind = "symlink" if info.issym() else "hardlink"
                yield info.name, _Link(f"{kind} to '{info.linkname}'"), base + info.offset
                continue
            if not info.isreg():
                continue
            name, header = info.name, base + info.offset
            if max_member_bytes is not None and info.size > max_member_bytes:
                # tarfile skips the data unread in streaming mode
                data: bytes | Oversized = Oversized(info.size, base + info.offset_data)
            else:
                data = stream.extractfile(info).read()
            stream.members = []  # streaming: don't keep every TarInfo alive
            yield info.name, data, header
        # Streaming tarfile takes a header cut short, or one that fails its checksum, for the end
        # of the archive. A whole archive ends with zero blocks after its last member: so the
        # object must be long enough for two of them, and nothing but zeros may follow.
        size = getattr(getattr(f, "raw", f), "size", None)
        if size is not None and size < after + 2 * tarfile.BLOCKSIZE:
            raise tarfile.ReadError(f"no end-of-archive marker: object is {size} bytes")
        while chunk := stream.fileobj.read(1 << 16):
            if chunk.strip(b"\0"):
                raise tarfile.ReadError("data after the end of the archive: a corrupt header")
    except SourceError:
        raise
    except (tarfile.TarError, EOFError) as exc:
        where = f"after member '{name}' (header at byte {header})" if name else f"at byte {base}"
        raise CorruptShardError(f"corrupt or truncated tar {where}: {exc}", url=url,
                                at=after) from exc
    except Exception as exc:
        raise SourceError(f"read failed: {type(exc).__name__}: {exc}", url=url) from exc


def iter_samples(
    url: str, storage_options: dict[str, Any], offset: int = 0, *,
    retry: RetryPolicy | None = None, max_member_bytes: int | None = None,
    odd_member: Callable[[SourceError], None] = _raise,
) -> Iterator[TarSample]:
    """Samples of the shard starting at the sample whose header is at ``offset``; odd members
    go to ``odd_member`` (which raises the error it is given, or returns to drop the member)."""
    hint = "; source.on_bad_data.odd_member: skip drops and counts such members"
    with open_shard(url, storage_options, offset, retry) as f:
        key: str | None = None
        files: dict[str, bytes | Oversized] = {}
        start = offset
        members = _members(url, f, offset, max_member_bytes)
        while True:
            try:
                name, data, header = next(members)
            except StopIteration:
                break
            except CorruptShardError as exc:
                if key is not None:  # its members were whole: hand it out, then the error
                    yield TarSample(key, files, start, exc.at)
                raise
            if name.startswith("__") and name.endswith("__"):
                continue  # webdataset metadata members
            if isinstance(data, _Link):
                odd_member(SourceError(f"member '{name}' at byte {header} is a {data.what}"
                                       + hint, url=url, key=name))
                continue
            k, ext = base_plus_ext(name)
            if k is None:
                odd_member(SourceError(f"member '{name}' at byte {header} has no extension"
                                       + hint, url=url, key=name))
                continue
            if k != key:
                if key is not None:
                    yield TarSample(key, files, start, header)
                key, files, start = k, {}, header
            if ext in files:
                odd_member(SourceError(f"duplicate member '{name}' at byte {header} (the first "
                                       "is kept under skip)" + hint, url=url, key=k))
                continue
            files[ext] = data
        if key is not None:
            yield TarSample(key, files, start, None)


def read_sample_at(url: str, storage_options: dict[str, Any], offset: int, **kwargs) -> TarSample:
    """Re-fetch the one sample whose first header is at ``offset`` (shuffle-buffer restore)."""
    for sample in iter_samples(url, storage_options, offset, **kwargs):
        return sample
    raise SourceError(f"no sample at byte {offset}", url=url)
