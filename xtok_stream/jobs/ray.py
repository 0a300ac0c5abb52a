"""Run independent tasks on Ray, yielding results as they complete. ``ray`` is imported lazily,
so the package works without it (``pip install 'xtok-stream[ray]'``).

Connecting: if Ray is already initialised in this process (a test calling
``ray.init(num_cpus=2)``, or a script run by ``ray job submit``), that cluster is used; otherwise
``ray.init(address=...)`` - ``None`` starts a local cluster, ``"auto"`` joins the one on this node,
``"ray://host:10001"`` a remote one.

At most ``window`` tasks are in flight (default 4 per cluster CPU), so a plan of 100,000 shards
does not put 100,000 task specs into the scheduler at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import ConfigError, XtokError


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--engine ray needs Ray: pip install 'xtok-stream[ray]' "
                          "(or use --engine local)") from exc
    return ray


def ensure_ray(address: str | None = None):
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False if address is None else None)
    return ray


def map_unordered(fn: Callable[[Any], Any], items: Iterable[Any], *, address: str | None = None,
                  window: int | None = None, num_cpus: float = 1) -> Iterator[Any]:
    """``fn(item)`` for every item as a Ray task (``num_cpus`` each); results in completion
    order. A library error raised by a task is re-raised here as itself (type and fields, not
    Ray's ``RayTaskError`` wrapper); anything else as Ray's ``RayTaskError``."""
    ray = ensure_ray(address)
    remote = ray.remote(num_cpus=num_cpus, max_retries=2)(fn)
    if window is None:
        window = max(4, 4 * int(ray.cluster_resources().get("CPU", 1)))
    it = iter(items)
    pending = []
    for item in it:
        pending.append(remote.remote(item))
        if len(pending) >= window:
            break
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for item in it:
            pending.append(remote.remote(item))
            break
        try:
            result = ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, XtokError):
                raise exc.cause from exc
            raise
        yield result
