"""Reads that survive object-store faults: retry with backoff and resume at the byte that broke.

``ResilientFile`` is a raw file over any fsspec URL. When a read fails with a transient error
(HTTP 5xx or throttling surfaced by the store, connection reset, read timeout, or a body that
ends before the object does; :func:`is_transient` is the allowlist) it waits
``base_delay * 2**attempt`` (capped, with jitter), reopens
the object *at the current byte* (a range request) and continues, so a fault costs one request,
not a re-read of the shard. Everything else (not found, permission, ``EINVAL``, a ``TypeError``
from conflicting storage options, ...) is permanent and raised at once: retrying it would only
hide it for the whole backoff. After ``max_attempts`` consecutive failures the error names the
URL, the byte offset and the attempts.

A frozen endpoint (connection open, no bytes) must not stall a rank forever: on S3 every request
and body read is bounded by ``read_timeout`` seconds, and a timeout is a transient fault like
any other (reopen at the byte, back off, count it).

On S3 (s3fs) the object is read as *one streaming GET* from the current byte to the end, so a
body that breaks mid-way has already delivered everything before the break and the next GET
starts exactly there. Other stores go through fsspec's buffered file (a retry re-reads at most
the block in flight). s3fs and botocore retry some errors themselves first; this layer catches
what escapes them, including truncated bodies, which they do not resume.

Each :class:`RetryPolicy` carries its own ``counters`` (retries, reopens): a reader builds one
policy, so its counts travel with it into its metrics (not a process-global that counts since
process start). :meth:`RetryPolicy.run` is the one retry loop: the tar reader's byte stream
(above) and the Arrow reader's ranged reads (:mod:`.arrow`) both go through it, so a fault is
classified, counted, backed off and reported the same way whichever format is read.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fsspec

from ..errors import SourceError

T = TypeVar("T")

_SIZES: dict[str, int] = {}  # object sizes seen by this process; writes through
# ``io.shards.put_atomic`` forget theirs (see ``forget_size``)


def forget_size(url: str) -> None:
    """Drop a cached object size (the object was just rewritten)."""
    _SIZES.pop(url, None)

PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
TRANSIENT_ERRNOS = frozenset({
    errno.EIO, errno.EREMOTEIO, errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED,
    errno.ETIMEDOUT, errno.EPIPE, errno.EAGAIN, errno.EHOSTUNREACH, errno.ENETUNREACH,
    errno.ENETDOWN, errno.ENETRESET, errno.ESHUTDOWN, errno.EBUSY,
})  # s3fs maps unknown store errors (5xx, SlowDown) to EIO and InternalError to EREMOTEIO
# network-layer classes of botocore, aiohttp, urllib3, requests, http.client and fsspec, by name
# (so none of those packages has to be importable here)
TRANSIENT_NAMES = frozenset({
    "HTTPClientError", "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
    "ConnectTimeoutError", "ResponseStreamingError", "IncompleteReadError", "IncompleteRead",
    "ResponseParserError", "ClientPayloadError", "ClientConnectionError",
    "ServerDisconnectedError", "ProtocolError", "ChunkedEncodingError", "RemoteDisconnected",
    "FSTimeoutError",
})
TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                             "InternalError", "ServiceUnavailable", "503", "500"})


def _status(exc: BaseException) -> int | None:
    """The HTTP status a client error carries (botocore ``response``, aiohttp ``status``)."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = resp.get("Error", {}).get("Code")
        if code in TRANSIENT_CODES:
            return 503
        return status if isinstance(status, int) else None
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """Whether a failed read is worth retrying: an allowlist of network faults, timeouts,
    truncated bodies and HTTP 5xx/429 (also found as the cause of a wrapping error)."""
    if isinstance(exc, PERMANENT):
        return False
    seen = 0
    node: BaseException | None = exc
    while node is not None and seen < 6:
        if isinstance(node, (TruncatedRead, ConnectionError, TimeoutError)):
            return True
        if isinstance(node, OSError) and node.errno in TRANSIENT_ERRNOS:
            return True
        if any(t.__name__ in TRANSIENT_NAMES for t in type(node).__mro__):
            return True
        status = _status(node)
        if status is not None and (status >= 500 or status == 429):
            return True
        node, seen = node.__cause__ or node.__context__, seen + 1
    return False


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 5.0
    jitter: float = 0.5  # +- fraction of the delay, so ranks don't retry in lockstep
    read_timeout: float = 60.0  # seconds one S3 request or body read may take
    counters: Counter = field(default_factory=Counter, compare=False, repr=False)
    """"retries", "reopens" of the reads made under this policy (one policy per reader)."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** attempt))
        return d * (1 + self.jitter * (2 * rng.random() - 1))

    def run(self, fn: Callable[[], T], *, url: str, what: str, rng: random.Random,
            between: Callable[[], None] | None = None) -> T:
        """``fn()``, retried on transient errors (:func:`is_transient`) with backoff; a
        permanent one, or the last of ``max_attempts``, becomes a SourceError naming ``url``
        and ``what`` failed (e.g. "read at byte 4096"). ``between`` runs before each retry
        (the byte stream reopens itself at its position there)."""
        attempt = 0
        while True:
            try:
                return fn()
            except PERMANENT as exc:
                raise SourceError(f"{type(exc).__name__}: {exc}", url=url) from exc
            except SourceError:
                raise
            except Exception as exc:  # sorted by is_transient just below
                if not is_transient(exc):
                    raise SourceError(
                        f"{what} failed: {type(exc).__name__}: {exc} (a permanent error, not "
                        "retried; check the URL and source.storage_options)", url=url) from exc
                attempt += 1
                self.counters["retries"] += 1
                if attempt >= self.max_attempts:
                    raise SourceError(
                        f"{what} failed after {attempt} attempts: {type(exc).__name__}: {exc} "
                        "(source.retry.max_attempts)", url=url) from exc
                time.sleep(self.delay(attempt - 1, rng))
                if between is not None:
                    between()


def filesystem(url: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    """``fsspec.core.url_to_fs``; an unknown protocol, a missing backend (gs:// without gcsfs)
    or bad options are permanent and named."""
    try:
        return fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError, TypeError) as exc:
        raise SourceError(f"cannot open this URL: {type(exc).__name__}: {exc} (install the "
                          "fsspec backend of its protocol, e.g. gcsfs for gs://; check "
                          "source.storage_options)", url=url) from exc


class TruncatedRead(IOError):
    """The body ended before the object's size."""


class _S3Stream:
    """One streaming ``GetObject`` of ``bytes=pos-`` through s3fs's own client and event loop."""

    def __init__(self, fs: Any, path: str, pos: int, size: int, timeout: float):
        from fsspec.asyn import sync

        self._sync, self._loop, self._timeout = sync, fs.loop, timeout
        bucket, key, version = fs.split_path(path)
        kwargs = {"VersionId": version} if version else {}
        self._body = None
        if pos < size:
            resp = self._bounded(fs._call_s3, "get_object", Bucket=bucket, Key=key,
                                 Range=f"bytes={pos}-{size - 1}", **kwargs)
            self._body = resp["Body"]

    def _bounded(self, fn, *args, **kwargs):
        """Run the coroutine ``fn(...)`` on s3fs's loop; cancel it after ``read_timeout``."""
        async def call():
            try:
                return await asyncio.wait_for(fn(*args, **kwargs), self._timeout)
            except TimeoutError as exc:
                raise TimeoutError(f"no answer for {self._timeout:g} s "
                                   "(source.retry.read_timeout)") from exc

        return self._sync(self._loop, call)

    def read(self, n: int) -> bytes:
        if self._body is None:
            return b""
        return self._bounded(self._body.read, n)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


class ResilientFile(io.RawIOBase):
    def __init__(self, url: str, storage_options: dict[str, Any], offset: int = 0,
                 policy: RetryPolicy | None = None, block_size: int = 1 << 22):
        self._f = None  # first: close() (also from __del__ after a failed __init__) needs it
        self.size: int | None = None
        self.url, self.pos = url, offset
        self.policy = policy or RetryPolicy()
        self.block_size = block_size
        self._rng = random.Random(hash((url, offset)))  # jitter only; never shapes data
        self._fs, self._path = filesystem(url, storage_options)
        self._f = self._call(self._open, reopen=False)

    def _open(self):
        if hasattr(self._fs, "_call_s3"):  # s3fs: stream from the exact byte
            if self.size is None:
                if self.url not in _SIZES:
                    if len(_SIZES) > 100_000:
                        _SIZES.clear()
                    _SIZES[self.url] = int(self._info()["size"])
                self.size = _SIZES[self.url]
            return _S3Stream(self._fs, self._path, self.pos, self.size, self.policy.read_timeout)
        if "file" in _protocols(self._fs):  # local disk: the OS file, no fsspec layer
            f = open(self._path, "rb", buffering=0)  # closed in close()
            if self.size is None:
                self.size = os.fstat(f.fileno()).st_size
            if self.pos:
                f.seek(self.pos)
            return f
        f = self._fs.open(self._path, "rb", block_size=self.block_size)
        if self.size is None:
            size = getattr(f, "size", None)
            self.size = int(size) if size is not None else None
        if self.pos:
            f.seek(self.pos)
        return f

    def _info(self) -> dict:
        from fsspec.asyn import sync

        async def call():
            try:
                return await asyncio.wait_for(self._fs._info(self._path),
                                              self.policy.read_timeout)
            except TimeoutError as exc:
                raise TimeoutError(f"no answer for {self.policy.read_timeout:g} s "
                                   "(source.retry.read_timeout)") from exc

        return sync(self._fs.loop, call)

    def _call(self, fn, reopen: bool = True):
        """Run ``fn`` with retries; reopen at ``self.pos`` between attempts (not when ``fn`` is
        the open itself: that would leave one stream open per retry)."""
        return self.policy.run(fn, url=self.url, what=f"read at byte {self.pos}", rng=self._rng,
                               between=self._reopen if reopen else None)

    def _reopen(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except Exception:  # the handle is broken anyway
                pass
            self._f = None
        try:
            self._f = self._open()
            self.policy.counters["reopens"] += 1
        except Exception as exc:  # a transient one: the next attempt reopens
            if not is_transient(exc):
                raise
            self._f = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        want = len(buf)

        def once() -> int:
            if self._f is None:
                raise ConnectionError("not open")
            if isinstance(self._f, io.RawIOBase):  # a local file reads straight into buf
                n = self._f.readinto(buf)
            else:
                data = self._f.read(want)
                n = len(data)
                buf[:n] = data
            if not n and self.size is not None and self.pos < self.size:
                raise TruncatedRead(f"body ended at byte {self.pos} of {self.size}")
            return n

        n = self._call(once)
        self.pos += n
        return n

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            finally:
                self._f = None
        super().close()


def _protocols(fs: Any) -> tuple:
    p = fs.protocol
    return p if isinstance(p, (tuple, list)) else (p,)


def open_resilient(url: str, storage_options: dict[str, Any], offset: int = 0,
                   policy: RetryPolicy | None = None) -> io.BufferedReader:
    return io.BufferedReader(ResilientFile(url, storage_options, offset, policy), 1 << 20)
