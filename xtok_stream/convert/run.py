"""The conversion driver: list inputs -> plan (cached) -> run the owned shard tasks on an engine
-> manifest. ``convert()`` is what ``xtok convert`` calls; tests and scripts call it directly
(e.g. after ``ray.init(num_cpus=2)``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import fsspec

from ..errors import SourceError, XtokError
from ..io.records_in import InputFile, list_inputs
from ..io.shards import put_atomic
from . import own
from .engines import owned, run_tasks
from .manifest import MANIFEST, build_manifest, collect, write_manifest
from .plan import ConvertConfig, Plan, make_plan, plan_id, scan_file
from .write import MARKERS, ShardTask, run_shard

PLAN_FILE = "_xtok/plan.json"


@dataclass
class Summary:
    shards: int          # shards this run was responsible for
    written: int         # ... of which written now
    skipped: int         # ... of which were already complete (verified by marker)
    samples: int
    bytes: int
    seconds: float
    planned_shards: int
    manifest: str | None  # URL, when this run wrote it

    def line(self, out: str, slot: tuple[int, int] | None = None) -> str:
        rate = f"{self.bytes / 1e6 / max(self.seconds, 1e-9):.1f} MB/s, " \
               f"{self.samples / max(self.seconds, 1e-9):,.0f} docs/s"
        who = f"task {slot[0]}/{slot[1]}: " if slot else ""
        tail = "" if self.manifest else (
            f"; {self.planned_shards} shards planned in all, run --finalize after every task")
        return (f"{who}wrote {self.shards} shards, {self.samples:,} samples, "
                f"{self.bytes / 1e6:.1f} MB to {out} in {self.seconds:.1f}s ({self.written} "
                f"written now, {self.skipped} already complete; {rate}){tail}")


def _scan_task(args) -> tuple[int, Any]:
    i, inp, cfg, opts = args
    try:
        return i, scan_file(inp, cfg, opts)
    except XtokError as exc:  # returned, not raised: the caller raises it with its type and fields
        return i, exc


def list_planned(inputs_spec: list[str], cfg: ConvertConfig,
                 opts: dict[str, Any]) -> tuple[list[InputFile], str]:
    """The listed inputs and their ``plan_id``."""
    inputs = list_inputs(inputs_spec, opts, cfg.split)
    if not inputs:
        raise SourceError("no inputs", url=", ".join(inputs_spec))
    return inputs, plan_id(cfg, inputs)


def get_plan(inputs_spec: list[str], out: str, cfg: ConvertConfig, opts: dict[str, Any], *,
             engine: str = "local", workers: int | None = None, ray_address: str | None = None,
             progress: bool = True, cache: bool = True,
             listed: tuple[list[InputFile], str] | None = None) -> Plan:
    """The plan for these inputs and config: loaded from ``{out}/_xtok/plan.json`` when it was
    made for the same ``plan_id``, otherwise scanned (one engine task per input) and cached.
    ``listed``: what ``list_planned`` returned, to list the inputs only once."""
    inputs, pid = listed or list_planned(inputs_spec, cfg, opts)
    cache_url = f"{out.rstrip('/')}/{PLAN_FILE}"
    if cache:
        try:
            with fsspec.open(cache_url, "rb", **opts) as f:
                plan = Plan.from_json(f.read())
            if plan.plan_id == pid:
                return plan
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError,
                SourceError):
            pass
    from ..progress import bar as tqdm  # plain lines off a terminal

    scans: list[Any] = [None] * len(inputs)
    with tqdm(total=len(inputs), unit="file", desc="plan", disable=not progress,
              dynamic_ncols=True) as bar:
        for i, scan in run_tasks(_scan_task, [(i, inp, cfg, opts) for i, inp in enumerate(inputs)],
                                 engine=engine, workers=workers, ray_address=ray_address):
            if isinstance(scan, XtokError):
                raise scan
            scans[i] = scan
            bar.update(1)
    plan = make_plan(inputs, scans, cfg, opts)
    if cache:
        put_atomic(cache_url, plan.to_json(), opts)
    return plan


def convert(inputs: list[str], out: str, cfg: ConvertConfig, *,
            storage_options: dict[str, Any] | None = None, engine: str = "local",
            workers: int | None = None, ray_address: str | None = None,
            slot: tuple[int, int] | None = None, finalize: bool = False, verify: bool = False,
            plan_only: bool = False, progress: bool = True, shard_delay_s: float = 0.0,
            break_lock: bool = False) -> Summary:
    """Convert ``inputs`` into ``{out}/{prefix}-NNNNNN.tar`` + ``manifest.json``.

    ``slot=(index, count)``: array-job task, writes only shards ``k % count == index`` and no
    manifest. ``finalize``: write nothing but the manifest, after checking every shard.
    ``plan_only``: only make (and cache) the plan - run it once before an array job so the
    tasks do not each scan the inputs.

    The run owns ``out`` (``convert.own``): a run of another plan holding its lock is refused
    (``break_lock`` overrides), and shards the new manifest does not list are deleted."""
    opts = storage_options or {}
    t0 = time.perf_counter()
    listed = list_planned(inputs, cfg, opts)
    own.acquire(out, listed[1], cfg.as_dict(), opts, break_lock=break_lock)
    whole = slot is None and not plan_only  # a run that ends by writing the manifest
    try:
        s = _convert(inputs, out, cfg, opts, listed, t0, engine=engine, workers=workers,
                     ray_address=ray_address, slot=slot, finalize=finalize, verify=verify,
                     plan_only=plan_only, progress=progress, shard_delay_s=shard_delay_s)
    except BaseException:
        if whole and not finalize:  # an array job's lock stays for its other tasks
            own.release(out, listed[1], opts)
        raise
    if whole:
        own.release(out, listed[1], opts)
    return s


def _finish(out: str, plan: Plan, results: dict[str, dict], opts: dict[str, Any]) -> dict:
    """Manifest, then delete what it does not list."""
    man = build_manifest(plan, results)
    own.check(out, plan.plan_id, opts)
    write_manifest(out, man, opts)
    own.remove_unlisted(out, [s["name"] for s in plan.shards], opts, MARKERS)
    return man


def _convert(inputs, out, cfg, opts, listed, t0, *, engine, workers, ray_address, slot,
             finalize, verify, plan_only, progress, shard_delay_s) -> Summary:
    plan = get_plan(inputs, out, cfg, opts, engine=engine, workers=workers,
                    ray_address=ray_address, progress=progress, listed=listed)
    own.drop_stale_manifest(out, plan.plan_id, opts)
    n_planned = len(plan.shards)
    if plan_only:
        return Summary(0, 0, 0, 0, 0, time.perf_counter() - t0, n_planned, None)
    if finalize:
        man = _finish(out, plan, collect(out, plan, opts, verify), opts)
        return Summary(n_planned, 0, n_planned, man["total_samples"], man["total_bytes"],
                       time.perf_counter() - t0, n_planned, f"{out.rstrip('/')}/{MANIFEST}")

    mine = owned(n_planned, slot)
    tasks = []
    for k in mine:
        spec = plan.shards[k]
        files = sorted({s[0] for s in spec["slices"]})
        tasks.append(ShardTask(out, plan.plan_id, spec, {f: plan.inputs[f] for f in files},
                               cfg.text_field, cfg.id_field, cfg.min_chars, opts,
                               int(cfg.max_record_mb * 1e6), verify, shard_delay_s,
                               cfg.messages_field))
    from ..progress import bar as tqdm  # plain lines off a terminal

    results: dict[str, dict] = {}
    written = nbytes = 0
    total = sum(plan.shards[k]["samples"] for k in mine)
    with tqdm(total=total, unit="doc", unit_scale=True, desc="convert", disable=not progress,
              dynamic_ncols=True) as bar:
        for r in run_tasks(run_shard, tasks, engine=engine, workers=workers,
                           ray_address=ray_address):
            if "error" in r:
                raise r["error"]
            results[r["name"]] = r
            written += r["written"]
            nbytes += r["bytes"]
            bar.update(r["samples"])
            bar.set_postfix_str(f"{nbytes / 1e6 / max(bar.format_dict['elapsed'], 1e-9):.1f} MB/s, "
                                f"{len(results)}/{len(tasks)} shards", refresh=False)
    url = None
    if slot is None:
        _finish(out, plan, results, opts)
        url = f"{out.rstrip('/')}/{MANIFEST}"
    return Summary(len(tasks), written, len(tasks) - written, total, nbytes,
                   time.perf_counter() - t0, n_planned, url)
