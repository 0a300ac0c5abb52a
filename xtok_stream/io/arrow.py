"""Random access to the rows of one Parquet or Arrow IPC file on any fsspec store.

``open_table(url, ...)`` returns a :class:`TableFile`: its column names, row count and *units*
(Parquet row groups, IPC record batches) with their first rows, and ``column(unit, name)`` to
read one column of one unit. Reading row ``r`` costs the footer plus the one unit holding it, so
a resume in the middle of a big file does not re-read what comes before it.

* Parquet, local: pyarrow's own file reader. Parquet on object storage: a seekable
  :class:`RangeFile` whose every read is one ranged GET, retried with backoff on transient faults
  (``source.retry``); pyarrow asks for the footer, then one range per column chunk it needs.
* Arrow IPC file / Feather v2 / IPC stream (``datasets.save_to_disk``): memory-mapped locally
  (zero copy); on object storage the object is downloaded whole (one retried read), since
  locating a row in IPC needs the batches before it. Prefer Parquet for remote data.
"""

from __future__ import annotations

import io
import random
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceError
from .retry import RetryPolicy, TruncatedRead, filesystem


class RangeFile(io.RawIOBase):
    """A seekable read-only file whose reads are ranged ``cat_file`` calls with retries.

    The last read that reached the end of the object (pyarrow's footer read, the whole object
    for small files) is kept, so later reads inside it cost no request."""

    def __init__(self, fs, path: str, url: str, policy: RetryPolicy):
        self.fs, self.path, self.url, self.policy = fs, path, url, policy
        self._rng = random.Random(hash(url))  # jitter only; never shapes data
        self.size = int(policy.run(lambda: fs.size(path), url=url, what="size lookup",
                                   rng=self._rng))
        self.pos = 0
        self._tail: tuple[int, bytes] = (self.size, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end <= self.pos:
            return b""
        start = self.pos
        if start >= self._tail[0]:
            self.pos = end
            return self._tail[1][start - self._tail[0]: end - self._tail[0]]
        def once() -> bytes:
            data = self.fs.cat_file(self.path, start=start, end=end)
            if len(data) != end - start:  # a body cut short: transient, read the range again
                raise TruncatedRead(f"{len(data)} of {end - start} bytes")
            return data

        data = self.policy.run(once, url=self.url, what=f"read of bytes {start}-{end}",
                               rng=self._rng)
        self.pos = end
        if end == self.size:
            self._tail = (start, data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)


def is_parquet(url: str) -> bool:
    return url.lower().split("?", 1)[0].endswith(".parquet")


class TableFile:
    """One opened Parquet or Arrow IPC file (see the module docstring)."""

    def __init__(self, url: str, storage_options: dict[str, Any], policy: RetryPolicy):
        self.url = url
        fs, path = filesystem(url, storage_options)
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        local = "file" in protocols
        self._pf: pq.ParquetFile | None = None
        self._batches: list[pa.RecordBatch] | None = None
        try:
            if is_parquet(url):
                src = path if local else RangeFile(fs, path, url, policy)
                self._pf = pq.ParquetFile(src)
                self.names = list(self._pf.schema_arrow.names)
                self.schema = self._pf.schema_arrow
                counts = [self._pf.metadata.row_group(g).num_rows
                          for g in range(self._pf.metadata.num_row_groups)]
            else:
                if local:
                    src = pa.memory_map(path)
                else:
                    src = pa.BufferReader(RangeFile(fs, path, url, policy).readall())
                try:
                    table = pa.ipc.open_file(src).read_all()
                except pa.ArrowInvalid:  # not the file format: an IPC stream
                    src.seek(0)
                    table = pa.ipc.open_stream(src).read_all()
                self.schema = table.schema
                self.names = list(table.schema.names)
                self._batches = table.to_batches()
                counts = [b.num_rows for b in self._batches]
        except FileNotFoundError as exc:
            raise SourceError("file not found", url=url) from exc
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(f"cannot read as {'Parquet' if is_parquet(url) else 'Arrow IPC'}:"
                              f" {exc}", url=url) from exc
        self.starts = [0]
        for n in counts:
            self.starts.append(self.starts[-1] + n)
        self.num_rows = self.starts[-1]

    @property
    def num_units(self) -> int:
        return len(self.starts) - 1

    def unit_of(self, row: int) -> int:
        """Index of the unit holding ``row`` (0 <= row < num_rows)."""
        import bisect

        return bisect.bisect_right(self.starts, row) - 1

    def column(self, unit: int, name: str) -> pa.Array:
        """Column ``name`` of one unit as one array."""
        try:
            if self._pf is not None:
                col = self._pf.read_row_group(unit, columns=[name]).column(0)
            else:
                col = self._batches[unit].column(name)
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(f"cannot read rows {self.starts[unit]}-{self.starts[unit + 1]}: "
                              f"{exc}", url=self.url) from exc
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col

    def close(self) -> None:
        if self._pf is not None:
            self._pf.close()
        self._pf = self._batches = None


def open_table(url: str, storage_options: dict[str, Any] | None = None,
               policy: RetryPolicy | None = None) -> TableFile:
    return TableFile(url, dict(storage_options or {}), policy or RetryPolicy())
