"""Precomputed shards stream the same batches as on-the-fly ones; a mismatched pipeline is
refused naming the field; lanes resume at every step; local and loopback S3; the CLI flows."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from xtok_stream.config import load_config
from xtok_stream.convert.precompute import precompute
from xtok_stream.errors import ConfigError
from xtok_stream.io.urls import lane_urls
from xtok_stream.loader import Loader
from xtok_stream.pipeline import build_lane
from xtok_stream.testing import canonical, check_resume

LANES = 4


def pipeline(urls, fmt="tar", **over) -> dict:
    tree = {
        "source": {"urls": urls, "format": fmt},
        "student": {"tokenizer": "pkg:qwen2", "seq_len": 256},
        "teachers": [{"tokenizer": "pkg:mistral-v3"}, {"tokenizer": "pkg:deepseek-v4",
                                                      "max_len": 384}],
        "num_lanes": LANES, "batch_size": 4, "seed": 3,
        "shuffle": {"shards": True, "buffer": 4},
    }
    for k, v in over.items():
        tree[k] = v
    return tree


@pytest.fixture(scope="module")
def made(local_shards, tmp_path_factory):
    """(on-the-fly config, precomputed config, output folder)."""
    shards, _ = local_shards
    out = tmp_path_factory.mktemp("pre")
    src = load_config(pipeline(shards))
    index = precompute(src, str(out), sequences_per_shard=5, workers=1)
    assert index["sequences"] > 20 and index["written_lanes"] == LANES
    pre = load_config(pipeline([f"{out}/"], "precomputed"))
    return src, pre, out


def batches(config, **kw) -> list:
    return [canonical(b) for b in Loader(config, **kw)]


def test_same_batches_as_on_the_fly(made):
    src, pre, _ = made
    ref = batches(src)
    assert len(ref) > 5
    assert batches(pre) == ref
    # another topology: each rank's share is the same too
    for rank in range(2):
        assert batches(pre, rank=rank, world_size=2) == batches(src, rank=rank, world_size=2)


def test_batch_metrics_report_the_same_alignment_modes(made):
    """The alignment mode per teacher is in the batch metrics of both paths, identically (derived
    from the config: precomputed shards need not record it), and so is every other metric."""
    src, pre, _ = made
    got = []
    for config in (src, pre):
        loader = Loader(config)
        # the loader's own counters (read retries of this run, ...) are not the batch's
        got.append([{k: v for k, v in loader.batch_metrics(b).items()
                     if not k.startswith("loader/")} for b in loader])
    assert got[0] == got[1]
    m = got[0][0]
    assert m["teacher/mistral-v3/mode/byte_level/sentencepiece"] == 1.0
    assert m["teacher/deepseek-v4/mode/byte_level/byte_level"] == 1.0
    assert m["teacher/mistral-v3/text_space"] == 1.0 == m["teacher/deepseek-v4/text_space"]


def test_same_batches_with_workers(made):
    src, pre, _ = made
    w2 = {"num_workers": 2}
    assert batches(pre.model_copy(update=w2)) == batches(src.model_copy(update=w2))


def test_lanes_yield_the_same_sequences(made, local_shards):
    src, pre, out = made
    shards, _ = local_shards
    pre_shards = sorted(str(p) for p in out.glob("lane*.tar"))
    for lane in range(LANES):
        a, b = build_lane(src, shards, lane), build_lane(pre, pre_shards, lane)
        for x, y in zip(a, b, strict=True):
            assert y.length == x.length and np.array_equal(y.input_ids, x.input_ids)
            assert y.input_ids.dtype == x.input_ids.dtype and y.pieces == x.pieces
            for name, v in x.extras.items():
                w = y.extras[name]
                assert list(w) == list(v)
                for k in v:
                    assert np.array_equal(np.asarray(w[k]), np.asarray(v[k])), (name, k)
                    assert np.asarray(w[k]).dtype == np.asarray(v[k]).dtype, (name, k)


def test_resume_every_step(made):
    _, pre, out = made
    shards = sorted(str(p) for p in out.glob("lane*.tar"))
    two = pre.model_copy(update={"epochs": 2})  # crosses an epoch end (replay)
    items = check_resume(lambda: build_lane(two, shards, 1))
    assert len(items) == 2 * sum(
        json.loads(m.read_text())["sequences"] for m in out.glob("_xtok/precompute/lane0001.json"))


def test_loader_resume_is_bit_identical(made):
    _, pre, _ = made
    full = batches(pre)
    loader = Loader(pre)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = json.loads(json.dumps(loader.state_dict()))
    again = Loader(pre)
    again.load_state_dict(state)
    assert [canonical(b) for b in again] == full[3:]


@pytest.mark.parametrize(("override", "field"), [
    ({"student": {"tokenizer": "pkg:qwen2", "seq_len": 512}}, "student.seq_len"),
    ({"teachers": [{"tokenizer": "pkg:mistral-v3"},
                   {"tokenizer": "pkg:qwen2", "name": "deepseek-v4", "max_len": 384}]},
     "teachers.1.tokenizer"),
    ({"teachers": [{"tokenizer": "pkg:mistral-v3"}, {"tokenizer": "pkg:deepseek-v4"}]},
     "teachers.1.max_len"),
    ({"seed": 4}, "seed"),
])
def test_mismatched_pipeline_is_refused(made, override, field):
    _, _, out = made
    bad = load_config(pipeline([f"{out}/"], "precomputed", **override))
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as exc:
        next(iter(Loader(bad)))
    assert "precompute" in str(exc.value)


def test_mismatch_found_after_a_mid_shard_resume(made):
    """Resuming at an offset skips the shard's first sample (which holds the spec)."""
    _, pre, out = made
    shards = sorted(str(p) for p in out.glob("lane*.tar"))
    lane = build_lane(pre, shards, 0)
    next(lane)
    state = lane.state_dict()
    assert state["offset"] > 0
    bad = load_config(pipeline([f"{out}/"], "precomputed",
                               student={"tokenizer": "pkg:qwen2", "seq_len": 128}))
    other = build_lane(bad, shards, 0)
    other.load_state_dict(state)
    with pytest.raises(ConfigError, match=r"student\.seq_len: saved 256 != now 128"):
        next(other)


def test_text_shards_are_not_precomputed_shards(local_shards):
    shards, _ = local_shards
    with pytest.raises(ConfigError, match="no shard among source.urls"):
        build_lane(load_config(pipeline(shards, "precomputed")), shards, 0)
    assert lane_urls(["a/lane0002-000001.tar", "a/lane0002-000000.tar", "a/lane0012-000000.tar",
                      "a/shard-000000.tar"], 2) == ["a/lane0002-000000.tar",
                                                    "a/lane0002-000001.tar"]


def test_s3_round_trip_and_rerun_skips(made, s3, s3_shards):
    src, _, _ = made
    shards, _ = s3_shards
    opts = s3.storage_options
    s3_src = load_config(pipeline(shards) | {"source": {"urls": shards,
                                                        "storage_options": opts}})
    out = "s3://xtok-test/precomputed"
    index = precompute(s3_src, out, storage_options=opts, sequences_per_shard=7, workers=1)
    again = precompute(s3_src, out, storage_options=opts, sequences_per_shard=7, workers=1)
    assert again["written_lanes"] == 0 and again["sequences"] == index["sequences"]
    pre = load_config(pipeline([f"{out}/"], "precomputed")
                      | {"source": {"urls": [f"{out}/lane*.tar"], "format": "precomputed",
                                    "storage_options": opts}})
    # the source documents are the same as the local shards': same packed stream
    assert batches(pre) == batches(src)


def test_cli_from_jsonl_and_from_tar(local_shards, tmp_path):
    from xtok_stream.cli.main import main

    shards, texts = local_shards
    pipe = tmp_path / "p.yaml"
    pipe.write_text(json.dumps(pipeline(["unused.tar"])))
    # tar inputs: they are the source
    assert main(["convert", *shards, "--out", str(tmp_path / "a"), "--precompute", str(pipe),
                 "--workers", "1", "--no-progress"]) == 0
    streamed = load_config(str(tmp_path / "a" / "pipeline.yaml"))
    assert streamed.source.format == "precomputed"
    assert batches(streamed) == batches(load_config(pipeline(shards)))
    # JSONL inputs: converted to text shards first, then precomputed
    rows = tmp_path / "docs.jsonl"
    rows.write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in texts.items()))
    out = tmp_path / "b"
    assert main(["convert", str(rows), "--out", str(out), "--id-field", "id",
                 "--samples-per-shard", "10", "--precompute", str(pipe), "--workers", "1",
                 "--no-progress"]) == 0
    text_shards = sorted(str(p) for p in (out / "text").glob("shard-*.tar"))
    assert len(text_shards) == 8
    assert batches(load_config(str(out / "pipeline.yaml"))) == batches(
        load_config(pipeline(text_shards)))


def test_rerun_into_the_same_folder_leaves_no_stale_shards(local_shards, tmp_path):
    """A longer run, then a shorter one into the same --out: only the second is read back, and
    a lost shard in the middle of a lane is an error, not a silent gap."""
    shards, texts = local_shards
    long_src = load_config(pipeline(shards))
    short_src = load_config(pipeline(shards[:2]))
    precompute(long_src, str(tmp_path), sequences_per_shard=2, workers=1)
    precompute(short_src, str(tmp_path), sequences_per_shard=2, workers=1)
    pre = load_config(pipeline([f"{tmp_path}/"], "precomputed"))
    got = [p[0] for b in Loader(pre) for r in b["pieces"] for p in r]
    want = [p[0] for b in Loader(short_src) for r in b["pieces"] for p in r]
    assert sorted(got) == sorted(want)
    lane0 = lane_urls(sorted(str(p) for p in tmp_path.glob("lane*.tar")), 0)
    assert len(lane0) >= 3
    (tmp_path / lane0[1].rsplit("/", 1)[-1]).unlink()
    remaining = sorted(str(p) for p in tmp_path.glob("lane*.tar"))
    with pytest.raises(ConfigError, match="mixes runs or lost a shard"):
        list(build_lane(pre, remaining, 0))


def test_unreadable_sample_names_shard_and_key(made, tmp_path):
    from xtok_stream.errors import DecodeError
    from xtok_stream.io.shards import encode_shard
    from xtok_stream.io.tar import iter_samples

    _, pre, out = made
    url = lane_urls(sorted(str(p) for p in out.glob("lane*.tar")), 0)[0]
    samples = [dict({"__key__": s.key}, **s.files) for s in iter_samples(url, {})]
    samples[0]["pieces.json"] = b"{not json"
    data, _ = encode_shard(samples)
    bad = tmp_path / "lane0000-000000.tar"
    bad.write_bytes(data)
    with pytest.raises(DecodeError) as e:
        next(build_lane(pre, [str(bad)], 0))
    assert "lane0000-000000.tar" in str(e.value) and "key=lane0000-00000000" in str(e.value)


def test_teacher_name_with_slash_is_refused(local_shards, tmp_path):
    """A '/' in a teacher's name would put its members in a tar folder: refused before any
    shard is written, naming the field (the on-the-fly stream is unaffected)."""
    shards, _ = local_shards
    cfg = load_config(pipeline(shards, teachers=[{"tokenizer": "pkg:mistral-v3",
                                                  "name": "mistralai/v3"}]))
    with pytest.raises(ConfigError, match=r"teachers\.0\.name 'mistralai/v3'"):
        precompute(cfg, str(tmp_path / "pre"), workers=1)
    assert not (tmp_path / "pre").exists()


def _lane0_with_odd_members(out, dest):
    """Lane 0's shards copied to ``dest``; the first gets a symlink and an extension-less member
    after its first sample, and a duplicate (garbage) meta.json inside its second sample."""
    import shutil
    import tarfile

    urls = lane_urls(sorted(str(p) for p in out.glob("lane*.tar")), 0)
    dest.mkdir()
    for u in urls[1:]:
        shutil.copy(u, dest)
    name = urls[0].rsplit("/", 1)[-1]
    with tarfile.open(urls[0]) as src, tarfile.open(dest / name, "w") as tar:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
        keys = list(dict.fromkeys(m.name.split(".", 1)[0] for m, _ in members))
        for i, (m, data) in enumerate(members):
            if i and m.name.startswith(keys[1]) and members[i - 1][0].name.startswith(keys[0]):
                link = tarfile.TarInfo("evil.txt")
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(link)
                odd = tarfile.TarInfo("README")
                odd.size = 2
                tar.addfile(odd, io.BytesIO(b"hi"))
            tar.addfile(m, io.BytesIO(data))
            if m.name == f"{keys[1]}.meta.json":
                dup = tarfile.TarInfo(m.name)
                dup.size = 5
                tar.addfile(dup, io.BytesIO(b"{bad}"))
    return urls, lane_urls(sorted(str(p) for p in dest.glob("lane*.tar")), 0)


def test_odd_members_follow_the_policy(made, tmp_path):
    """Symlink, extension-less and duplicate members in a precomputed shard: an error naming
    shard, member and byte under the default policy; dropped and counted under skip, with the
    same sequences as the clean shards and a resumable count."""
    from xtok_stream.errors import SourceError

    _, pre, out = made
    clean, odd = _lane0_with_odd_members(out, tmp_path / "odd")
    with pytest.raises(SourceError, match=r"member 'evil.txt' at byte \d+ is a symlink.*"
                       r"odd_member: skip") as e:
        list(build_lane(pre, odd, 0))
    assert e.value.url == odd[0] and e.value.key == "evil.txt"
    skip = pre.model_copy(update={"source": pre.source.model_copy(update={
        "on_bad_data": pre.source.on_bad_data.model_copy(update={"odd_member": "skip"})})})
    lane = build_lane(skip, odd, 0)
    got = [canonical(s) for s in lane]
    assert got == [canonical(s) for s in build_lane(pre, clean, 0)]
    assert lane.state_dict()["skipped"] == {"odd_member": 3}
    check_resume(lambda: build_lane(skip, odd, 0))


def test_precomputed_reads_time_out_on_a_frozen_endpoint(made, s3):
    """source.retry.read_timeout reaches the precomputed reader: a stalled S3 read is cut off
    and resumed at the byte (with the 60 s default this run would take minutes)."""
    import time

    import fsspec

    from tests.faultproxy import FaultProxy

    _, pre, out = made
    shards = lane_urls(sorted(str(p) for p in out.glob("lane*.tar")), 1)
    fs = fsspec.filesystem("s3", **s3.storage_options)
    fs.put([str(p) for p in shards], "xtok-test/pre-frozen/")
    urls = [f"s3://xtok-test/pre-frozen/{p.rsplit('/', 1)[-1]}" for p in shards]
    proxy = FaultProxy(s3.endpoint, rate=0.5, seed=3, kinds=("stall",), stall_s=60)
    src = pre.source.model_copy(update={
        "storage_options": dict(s3.storage_options, endpoint_url=proxy.endpoint),
        "retry": pre.source.retry.model_copy(update={"read_timeout": 0.5, "max_attempts": 30,
                                                     "base_delay": 0.01})})
    t0 = time.perf_counter()
    try:
        got = [canonical(s) for s in build_lane(
            pre.model_copy(update={"source": src}), urls, 1)]
    finally:
        proxy.stop()
    assert proxy.injected["stall"] > 0 and time.perf_counter() - t0 < 40, proxy.gets
    assert got == [canonical(s) for s in build_lane(pre, shards, 1)]


def test_a_read_failed_for_good_mid_shard_resumes_at_the_cursor(made, s3):
    """After a SourceError (retries spent) a second next() reopens the shard at the cursor and
    the lane goes on with the next sequence: none is dropped or repeated."""
    import fsspec

    from tests.faultproxy import FaultProxy, read_through_one_failure

    _, pre, out = made
    shards = lane_urls(sorted(str(p) for p in out.glob("lane*.tar")), 2)
    fs = fsspec.filesystem("s3", **s3.storage_options)
    fs.put([str(p) for p in shards], "xtok-test/pre-failed/")
    urls = [f"s3://xtok-test/pre-failed/{p.rsplit('/', 1)[-1]}" for p in shards]
    proxy = FaultProxy(s3.endpoint, seed=4)
    src = pre.source.model_copy(update={
        "storage_options": dict(s3.storage_options, endpoint_url=proxy.endpoint,
                                config_kwargs={"retries": {"max_attempts": 1}}),
        "retry": pre.source.retry.model_copy(update={"max_attempts": 1})})
    clean = [canonical(s) for s in build_lane(pre, shards, 2)]
    lane = build_lane(pre.model_copy(update={"source": src}), urls, 2)
    try:
        got, failures = read_through_one_failure(lane, proxy, after=2, key=canonical)
    finally:
        proxy.stop()
    assert failures and all(f["offset"] > 0 for f in failures), failures  # inside a shard
    assert got == clean
