"""Write precomputed shards: each lane of the pipeline, run once, into its own shard group.

One sample per packed sequence, key ``lane{L:04d}-{i:08d}`` (``i`` counts the lane's sequences)::

    input_ids.npy               int32 [seq_len]  student tokens (padding included, as packed)
    pieces.json                 [[doc_key, char_start, char_end, token_start, token_end, ends,
                                  starts], ...]
    meta.json                   {"fingerprint", "lane", "index", "length"} (+ "spec" in a shard's
                                first sample)
    {teacher}.input_ids.npy     int32 [n]        the teacher's tokens (after max_len)
    {teacher}.student_spans.npy uint16 [k, 2]    chunks as half-open token ranges (int32 when
    {teacher}.teacher_spans.npy uint16 [k, 2]    a position passes 65,535; read back as int32)
    {teacher}.exact.npy         bool [k]
    {teacher}.metrics.npy       float64 [6]      per-sequence alignment metrics

``{teacher}`` is the teacher's batch key. Piece texts are not stored: only teacher stages read
them, and those ran here. Lane ``L`` writes ``lane{L:04d}-{k:06d}.tar`` for ``k = 0, 1, ...``
(``sequences_per_shard`` each) and a done marker ``_xtok/precompute/lane{L:04d}.json``; a re-run
skips lanes whose marker has the same fingerprint and source and whose shards have the recorded
sizes. Lanes are independent, so they run in parallel on the converter's engines.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
import numpy as np

from ..config import PipelineConfig
from ..errors import ConfigError, XtokError
from ..io.shards import ShardInfo, chunked, encode_shard, put_atomic
from ..io.urls import expand_urls
from ..precompute.spec import pipeline_spec, spec_fingerprint
from ..records import PackedSequence
from ..state import fingerprint

MARKERS = "_xtok/precompute"
INDEX = "precompute.json"
PIPELINE = "pipeline.yaml"


def lane_shard_name(lane: int, k: int) -> str:
    return f"lane{lane:04d}-{k:06d}.tar"


def _narrow(spans: np.ndarray) -> np.ndarray:
    """Token positions fit 16 bits for any seq_len / max_len up to 65,535: half the bytes."""
    fits = spans.size == 0 or (spans.min() >= 0 and spans.max() <= 0xFFFF)
    return spans.astype(np.uint16) if fits else spans


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def encode_sequence(seq: PackedSequence, *, lane: int, index: int, fp: str,
                    teachers: list[str], spec: dict | None = None) -> dict[str, Any]:
    """One packed sequence (after the teacher stages) -> a tar sample dict."""
    meta: dict[str, Any] = {"fingerprint": fp, "lane": lane, "index": index, "length": seq.length}
    if spec is not None:
        meta["spec"] = spec
    sample: dict[str, Any] = {
        "__key__": f"lane{lane:04d}-{index:08d}",
        "input_ids.npy": npy(seq.input_ids.astype(np.int32)),
        "pieces.json": json.dumps([[p.key, p.char_start, p.char_end, p.token_start, p.token_end,
                                    p.ends_document, p.starts_document] for p in seq.pieces],
                                  separators=(",", ":"), ensure_ascii=False),
        "meta.json": json.dumps(meta, sort_keys=True, separators=(",", ":")),
    }
    for name in teachers:
        v = seq.extras[name]
        if v["n_student"] != seq.length:  # the teacher stages always set it so; keep it checked
            raise XtokError(f"teacher {name}: n_student {v['n_student']} != length {seq.length}")
        sample[f"{name}.input_ids.npy"] = npy(np.asarray(v["input_ids"]).astype(np.int32))
        for field in ("student_spans", "teacher_spans"):
            sample[f"{name}.{field}.npy"] = npy(_narrow(np.asarray(v[field])))
        for field in ("exact", "metrics"):
            sample[f"{name}.{field}.npy"] = npy(np.asarray(v[field]))
    return sample


@dataclass(frozen=True)
class LaneTask:
    config: PipelineConfig      # the source pipeline (format tar/arrow), epochs forced to 1
    shards: list[str]           # its expanded source shard list (same for every lane)
    lane: int
    out: str
    storage_options: dict[str, Any]  # for the output
    sequences_per_shard: int
    fingerprint: str
    spec: dict
    source_id: str              # fingerprint of the source shard list + source settings


def _marker_url(out: str, lane: int) -> str:
    return f"{out.rstrip('/')}/{MARKERS}/lane{lane:04d}.json"


def _complete(task: LaneTask) -> dict | None:
    """The lane's done marker if it belongs to this run and every shard has its size."""
    try:
        with fsspec.open(_marker_url(task.out, task.lane), "rb", **task.storage_options) as f:
            marker = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("shards"), list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str)
            and isinstance(s.get("bytes"), int) for s in marker["shards"]):
        return None  # not a marker (damaged, foreign): the lane is recomputed, never trusted
    if marker.get("fingerprint") != task.fingerprint or marker.get("source") != task.source_id:
        return None
    fs, root = fsspec.core.url_to_fs(task.out.rstrip("/"), **task.storage_options)
    for s in marker["shards"]:
        try:
            if fs.size(f"{root}/{s['name']}") != s["bytes"]:
                return None
        except FileNotFoundError:
            return None
    return marker


def run_lane(task: LaneTask) -> dict:
    """Precompute one lane (runs in an engine worker); returns its marker, or ``{lane, error}``
    with the library error itself (it pickles with its type and fields; the caller raises it)."""
    try:
        done = _complete(task)
        if done is not None:
            return dict(done, written=False)
        return dict(_run_lane(task), written=True)
    except XtokError as exc:
        return {"lane": task.lane, "error": exc}


def _run_lane(task: LaneTask) -> dict:
    from ..pipeline import build_lane

    t0 = time.perf_counter()
    names = [t.key for t in task.config.teachers]
    stage = build_lane(task.config, task.shards, task.lane)
    infos: list[ShardInfo] = []
    index = tokens = 0
    try:
        for k, chunk in enumerate(chunked(stage, task.sequences_per_shard)):
            samples = []
            for j, seq in enumerate(chunk):
                samples.append(encode_sequence(seq, lane=task.lane, index=index, fp=task.fingerprint,
                                               teachers=names, spec=task.spec if j == 0 else None))
                index += 1
                tokens += seq.length
            data, n = encode_shard(samples)
            name = lane_shard_name(task.lane, k)
            put_atomic(f"{task.out.rstrip('/')}/{name}", data, task.storage_options)
            infos.append(ShardInfo(name, n, len(data), hashlib.sha256(data).hexdigest()))
    finally:
        stage.close()
    _remove_stale(task, len(infos))
    marker = {"lane": task.lane, "fingerprint": task.fingerprint, "source": task.source_id,
              "sequences": index, "tokens": tokens, "shards": [asdict(i) for i in infos],
              "seconds": round(time.perf_counter() - t0, 3)}
    put_atomic(_marker_url(task.out, task.lane), json.dumps(marker, sort_keys=True).encode(),
               task.storage_options)
    return marker


def _remove_stale(task: LaneTask, count: int) -> None:
    """Delete this lane's shards numbered ``count`` and up, left by an earlier, longer run into
    the same folder (the reader would otherwise mix them in)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(task.out.rstrip("/"), **(task.storage_options or {}))
    prefix = lane_shard_name(task.lane, 0).rsplit("-", 1)[0] + "-"
    try:
        names = fs.ls(root, detail=False)
    except FileNotFoundError:
        return
    for path in names:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(prefix) and name.endswith(".tar"):
            k = name[len(prefix):-4]
            if k.isdigit() and int(k) >= count:
                fs.rm(path)


def check_teacher_names(config: PipelineConfig) -> None:
    """A teacher's key starts its members' names (``{name}.input_ids.npy``): a ``/`` there
    would put the member in a tar folder, and the sample could not be read back as one."""
    for i, t in enumerate(config.teachers):
        if not t.key or "/" in t.key or "\\" in t.key:
            raise ConfigError(f"teachers.{i}.name {t.key!r} cannot name precomputed members (no "
                              "'/' or '\\', not empty); set teachers[].name to a plain name "
                              "such as 'mistral'")


def source_config(config: PipelineConfig) -> PipelineConfig:
    """The pipeline whose lanes are precomputed: one pass (``epochs: 1``) over a text source."""
    if config.sources is not None:  # issue 14: a mixture blends sources at read time
        raise ConfigError("--precompute runs one source; precompute each source of a mixture "
                          "with its own pipeline (source: ...) and list the outputs as "
                          "format: precomputed entries under sources:")
    if config.source.format == "precomputed":
        raise ConfigError("--precompute needs a pipeline over text shards (source.format tar or "
                          "arrow), got source.format: precomputed")
    check_teacher_names(config)
    return config.model_copy(update={"epochs": 1})


def precompute(config: PipelineConfig, out: str, *, shards: list[str] | None = None,
               storage_options: dict[str, Any] | None = None, sequences_per_shard: int = 256,
               engine: str = "local", workers: int | None = None,
               ray_address: str | None = None, progress: bool = False) -> dict:
    """Run every lane of ``config`` once over ``shards`` (default: ``config.source.urls``
    expanded) and write the precomputed shards, ``precompute.json`` and ``pipeline.yaml`` under
    ``out``. Returns the ``precompute.json`` contents."""
    from .engines import run_tasks

    if sequences_per_shard < 1:
        raise ConfigError(f"sequences_per_shard must be >= 1, got {sequences_per_shard}")
    cfg = source_config(config)
    opts = dict(storage_options or {})
    shards = shards if shards is not None else expand_urls(cfg.source.urls,
                                                           cfg.source.storage_options)
    spec = pipeline_spec(cfg)
    fp = spec_fingerprint(spec)
    src = {"shards": fingerprint(shards), "text_field": cfg.source.text_field,
           "format": cfg.source.format, "on_bad_data": cfg.source.on_bad_data.model_dump()}
    source_id = fingerprint(src)
    tasks = [LaneTask(cfg, shards, lane, out, opts, sequences_per_shard, fp, spec, source_id)
             for lane in range(cfg.num_lanes)]
    from tqdm import tqdm

    t0 = time.perf_counter()
    lanes: dict[str, dict] = {}
    with tqdm(total=len(tasks), unit="lane", desc="precompute", disable=not progress,
              dynamic_ncols=True) as bar:
        for r in run_tasks(run_lane, tasks, engine=engine, workers=workers,
                           ray_address=ray_address):
            if "error" in r:
                r["error"].add_note(f"(precompute lane {r['lane']} of {out})")
                raise r["error"]
            lanes[str(r["lane"])] = r
            bar.update(1)
    order = [lanes[str(lane)] for lane in range(cfg.num_lanes)]
    index = {
        "version": 1, "fingerprint": fp, "spec": spec,
        "source": dict(src, urls=shards, count=len(shards)),
        "lanes": {str(r["lane"]): r["shards"] for r in order},
        "sequences": sum(r["sequences"] for r in order),
        "tokens": sum(r["tokens"] for r in order),
        "written_lanes": sum(bool(r["written"]) for r in order),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    root = out.rstrip("/")
    put_atomic(f"{root}/{INDEX}", json.dumps(index, indent=1, sort_keys=True).encode() + b"\n",
               opts)
    put_atomic(f"{root}/{PIPELINE}", streaming_yaml(config, root, opts).encode(), opts)
    return index


def streaming_yaml(config: PipelineConfig, root: str, opts: dict[str, Any]) -> str:
    """The pipeline that streams the precomputed shards (same spec, source.format: precomputed)."""
    import yaml

    tree = config.model_dump(mode="json", exclude_none=True)
    safe = {k: v for k, v in opts.items()  # never write credentials next to the data
            if not any(w in k.lower() for w in ("key", "secret", "token", "password"))}
    tree["source"] = {"urls": [f"{root}/lane*.tar"], "format": "precomputed",
                      "storage_options": safe}
    head = ("# written by `xtok convert --precompute`: streams the precomputed shards next to it.\n"
            "# student, teachers, seq_len/max_len, num_lanes, seed and shuffle must stay as they\n"
            "# are (checked against every shard); batch_size, workers, epochs may change.\n")
    return head + yaml.safe_dump(tree, sort_keys=False)
