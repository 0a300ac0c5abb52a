"""The loop the three readers share: epoch after epoch, a lane's shards in order, each from the
cursor's position to its end.

A reader (tar documents, Arrow rows, precomputed sequences) says how many shards its lane reads in
an epoch and which URL a slot is; :class:`ShardWalk` owns the position ``(epoch, slot, offset)``
(:class:`~xtok_stream.cursor.ShardCursor`) and moves it past finished shards and epochs.
:class:`TarWalk` adds the sample loop of the two tar readers: open the shard at ``offset``, take
samples, and on a fault leave the position where the next read must start:

* the end of a shard moves to the next one;
* a corrupt shard goes to the reader's ``_on_corrupt`` (raise: the position stays at the corrupt
  point, nothing is consumed; return: the rest of the shard is dropped);
* a read that failed for good (``SourceError``, after the retries) closes the sample iterator, so
  a caller that catches it and reads again reopens at the position instead of taking the dead
  generator's ``StopIteration`` for the end of the shard (which would drop the rest of it).

Shard counts per epoch are the same in every epoch (:func:`~xtok_stream.lanes.lane_shards` deals
a permutation round-robin), so a lane with no shard in one epoch has none in any: the walk ends
there instead of spinning through epochs when ``epochs`` is unbounded.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import SourceError
from ..io.retry import RetryPolicy
from ..io.tar import CorruptShardError, TarSample


class ShardWalk:
    """Position ``(epoch, slot, offset)`` over a lane's shards; see the module docstring.
    Readers also have a ``retry`` policy and a ``skipped`` count per bad-data kind."""

    epochs: int | None
    retry: RetryPolicy
    _epoch = _slot = _offset = 0

    @property
    def skipped(self) -> dict[str, int]:
        raise NotImplementedError

    @property
    def metrics(self) -> dict:
        """This reader's own counts: retries and reopens since it was built (its RetryPolicy
        counts them, not a process-global), the bad data skipped (kept in its cursor, so they
        survive a resume) and the epoch it reads (merged as the highest, not summed)."""
        c = self.retry.counters
        return {"retries": c["retries"], "reopens": c["reopens"], "skipped": self.skipped,
                "epoch": self._epoch}

    def _slots(self, epoch: int) -> int:
        """How many shards the lane reads in ``epoch``."""
        raise NotImplementedError

    def url_at(self, epoch: int, slot: int) -> str:
        raise NotImplementedError

    def _new_epoch(self) -> None:
        """Called when the walk enters the next epoch (after the position is reset)."""

    def _close_unit(self) -> None:
        """Release what the reader holds open on the current shard."""

    def _walk(self) -> str | None:
        """The URL of the shard to read at the position, past finished shards and epochs; None
        when the lane has nothing left."""
        while self.epochs is None or self._epoch < self.epochs:
            n = self._slots(self._epoch)
            if n == 0:
                return None
            if self._slot < n:
                return self.url_at(self._epoch, self._slot)
            self._epoch, self._slot, self._offset = self._epoch + 1, 0, 0
            self._new_epoch()
        return None

    def _next_shard(self) -> None:
        self._close_unit()
        self._slot, self._offset = self._slot + 1, 0

    def _seek(self, epoch: int, slot: int, offset: int) -> None:
        """Move to a restored (checked) position."""
        self._close_unit()
        self._epoch, self._slot, self._offset = epoch, slot, offset


class TarWalk(ShardWalk):
    """The sample loop of the tar readers (see the module docstring)."""

    _it: Iterator[TarSample] | None = None

    def _open_samples(self, url: str) -> Iterator[TarSample]:
        """The samples of ``url`` from byte ``self._offset`` on."""
        raise NotImplementedError

    def _on_corrupt(self, error: CorruptShardError) -> None:
        """Raise (the position stays at the corrupt point) or return (drop the shard's rest)."""
        raise error

    def _next_sample(self) -> TarSample:
        while True:
            if self._it is None:
                url = self._walk()
                if url is None:
                    raise StopIteration
                self._it = self._open_samples(url)
            try:
                return next(self._it)
            except StopIteration:  # the end of the shard (or an empty one)
                self._next_shard()
            except CorruptShardError as exc:
                self._close_unit()
                self._on_corrupt(exc)
                self._next_shard()
            except SourceError:
                self._close_unit()
                raise

    def _close_unit(self) -> None:
        if self._it is not None:
            self._it.close()  # closes the file handle held by the generator
            self._it = None
