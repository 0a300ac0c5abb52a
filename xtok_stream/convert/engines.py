"""Who runs the tasks: ``local`` (a process pool), ``ray`` (one Ray task per item), and which
shards an array-job task owns.

All engines call the same picklable function on the same task objects and yield results in
completion order; the caller orders them by shard index, so the output never depends on the
engine.

Array jobs (AWS Batch array jobs, Kubernetes Indexed Jobs, Cloud Run jobs, Google Cloud Batch):
task ``I`` of ``N`` owns shards ``k`` with ``k % N == I``. ``task_slot`` reads the index and
count from the command line or, when they are not given, from the first variable set among::

    index: XTOK_TASK_INDEX, AWS_BATCH_JOB_ARRAY_INDEX, JOB_COMPLETION_INDEX (k8s Indexed Job),
           CLOUD_RUN_TASK_INDEX, BATCH_TASK_INDEX (Google Cloud Batch)
    count: XTOK_TASK_COUNT, AWS_BATCH_JOB_ARRAY_SIZE, CLOUD_RUN_TASK_COUNT, BATCH_TASK_COUNT

Kubernetes does not expose the completion count to the pod: pass ``--task-count`` (or set
``XTOK_TASK_COUNT``) there.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from ..errors import ConfigError

ENGINES = ("local", "ray")
INDEX_VARS = ("XTOK_TASK_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "JOB_COMPLETION_INDEX",
              "CLOUD_RUN_TASK_INDEX", "BATCH_TASK_INDEX")
COUNT_VARS = ("XTOK_TASK_COUNT", "AWS_BATCH_JOB_ARRAY_SIZE", "CLOUD_RUN_TASK_COUNT",
              "BATCH_TASK_COUNT")


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    """One Arrow compute thread per worker process: the pool is the parallelism (as Ray does by
    setting OMP_NUM_THREADS=1 in its workers); Arrow's default of one thread per core in every
    process oversubscribes the machine."""
    import pyarrow as pa

    pa.set_cpu_count(1)


def _context():
    """fork where the platform has it: the workers start in milliseconds with everything
    imported (spawn costs ~1.5 s per run here, re-importing pyarrow/fsspec in each worker).
    fsspec and Arrow reset their event loop / thread pools in a forked child."""
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


def _local(fn, items: list, workers: int) -> Iterator[Any]:
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(items)),
                             mp_context=_context(),
                             initializer=_init_worker) as pool:
        it = iter(items)
        pending = {pool.submit(fn, x) for _, x in zip(range(2 * workers), it)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                for x in it:
                    pending.add(pool.submit(fn, x))
                    break
                yield fut.result()


def run_tasks(fn: Callable[[Any], Any], items: Iterable[Any], *, engine: str = "local",
              workers: int | None = None, ray_address: str | None = None) -> Iterator[Any]:
    """``fn(item)`` for every item, results in completion order."""
    items = list(items)
    if engine == "local":
        yield from _local(fn, items, default_workers() if workers is None else workers)
    elif engine == "ray":
        from ..jobs.ray import map_unordered

        yield from map_unordered(fn, items, address=ray_address)
    else:
        raise ConfigError(f"unknown --engine {engine!r} (want one of {', '.join(ENGINES)})")


def _from_env(names: tuple[str, ...], env: Mapping[str, str]) -> tuple[str, int] | None:
    for name in names:
        raw = env.get(name)
        if raw not in (None, ""):
            try:
                return name, int(raw)
            except ValueError as exc:
                raise ConfigError(f"${name}={raw!r} is not an integer") from exc
    return None


def task_slot(index: int | None, count: int | None, array: bool,
              env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """(task index, task count) for array mode, or None for a whole run. Array mode is on when
    ``--array``, ``--task-index`` or ``--task-count`` is given; missing values come from the
    environment (see the module docstring)."""
    if not (array or index is not None or count is not None):
        return None
    env = os.environ if env is None else env
    if index is None:
        found = _from_env(INDEX_VARS, env)
        if found is None:
            raise ConfigError("array mode: no task index; pass --task-index or set one of "
                              + ", ".join(INDEX_VARS))
        index = found[1]
    if count is None:
        found = _from_env(COUNT_VARS, env)
        if found is None:
            raise ConfigError("array mode: no task count; pass --task-count or set one of "
                              + ", ".join(COUNT_VARS) + " (Kubernetes Indexed Jobs set none)")
        count = found[1]
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"array mode: task index {index} is not in [0, {count}) (--task-index, "
                          "--task-count)")
    return index, count


def owned(n_shards: int, slot: tuple[int, int] | None) -> list[int]:
    """Shard indices this task writes: all, or ``k % count == index``."""
    if slot is None:
        return list(range(n_shards))
    index, count = slot
    return list(range(index, n_shards, count))
