"""Mixtures (``sources:``, stages/mix.py): exact blend at every prefix on real shards over the
loopback S3, sources ending early under ``repeat`` and ``stop``, elastic resume exactly once per
source, weight changes at resume, tar + Arrow + precomputed in one mixture, ``check_resume``."""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import assert_exactly_once
from xtok_stream.cli.main import main as cli_main
from xtok_stream.config import load_config
from xtok_stream.errors import ConfigError, StateError
from xtok_stream.loader import Loader, merge_states
from xtok_stream.pipeline import build_lane
from xtok_stream.stages.mix import choose, mix_shards, source_pipeline
from xtok_stream.testing import check_resume

LANES = 4
WEIGHTS = {"web": 0.5, "code": 0.3, "books": 0.2}
SPLIT = {"web": (0, 40, 5), "code": (40, 64, 6), "books": (64, 80, 4)}  # docs [a, b), per shard


def _write(small_docs, prefix, opts):
    from xtok_stream.io.shards import write_shards

    urls, texts = {}, {}
    for name, (a, b, per) in SPLIT.items():
        docs = small_docs[a:b]
        infos = write_shards(docs, f"{prefix}/{name}", samples_per_shard=per, storage_options=opts)
        urls[name] = [f"{prefix}/{name}/{i.name}" for i in infos]
        texts[name] = {d["__key__"]: d["txt"] for d in docs}
    return urls, texts, opts


@pytest.fixture(scope="module")
def mix_s3(s3, small_docs):
    """Three disjoint real corpora on the loopback S3, each in >= LANES shards; returns
    ({name: urls}, {name: {key: text}}, storage options)."""
    return _write(small_docs, "s3://xtok-test/mix", s3.storage_options)


@pytest.fixture(scope="module")
def mix_local(small_docs, tmp_path_factory):
    """The same three corpora on local disk (for the many-process elastic test)."""
    return _write(small_docs, str(tmp_path_factory.mktemp("mix")), {})


def mixture(urls, opts, *, ends=None, weights=None, workers=0, mixture=None, **over):
    ends, weights = ends or {}, weights or WEIGHTS
    tree = {
        "sources": [{"name": n, "urls": urls[n], "storage_options": opts, "weight": weights[n],
                     "end": ends.get(n, "stop")} for n in WEIGHTS],
        "student": {"tokenizer": "pkg:qwen2", "seq_len": 96}, "num_lanes": LANES, "seed": 5,
        "batch_size": 3, "num_workers": workers, "shuffle": {"buffer": 3},
    }
    if mixture:
        tree["mixture"] = mixture
    tree.update(over)
    return load_config(tree)


def lane_run(config, shards, lane):
    return [(s.source, s.ledger()) for s in build_lane(config, shards, lane)]


def segments(stage):
    """A lane's source indices cut where the set of running sources changed (the mixer's
    ``done`` flags, read from its state after every item): [(running {index: weight}, [...])]."""
    out, last = [], None
    w = list(WEIGHTS.values())
    for seq in stage:
        done = tuple(stage.state_dict()["done"])
        if done != last:
            out.append(({i: w[i] for i, d in enumerate(done) if not d}, []))
        out[-1][1].append(seq.source)
        last = done
    return out


def assert_within_one(sources, weights):
    """At every prefix of ``sources`` each source's count is within 1 of w x n (``weights``: a
    list, or {source index: weight} for the sources running)."""
    weights = dict(enumerate(weights)) if isinstance(weights, list) else weights
    total = sum(Fraction(w) for w in weights.values())
    counts = dict.fromkeys(weights, 0)
    for n, s in enumerate(sources, 1):
        counts[s] += 1
        for i, w in weights.items():
            assert abs(counts[i] - Fraction(w) / total * n) < 1, (n, counts)


def rows(batches):
    """(source index, pieces) of every real row."""
    out = []
    for b in batches:
        for r in range(b["input_ids"].shape[0]):
            if b["sample_mask"][r]:
                out.append((int(b["source_ids"][r]), b["pieces"][r]))
    return out


def assert_each_source_once(rows_, texts):
    by = defaultdict(list)
    for s, pieces in rows_:
        by[s] += pieces
    for i, name in enumerate(WEIGHTS):
        assert_exactly_once(by[i], texts[name])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=6), st.integers(0, 2**32),
       st.integers(1, 200))
def test_blend_is_within_one_at_every_prefix(ints, seed, steps):
    from xtok_stream.stages.mix import priority_order

    w = [Fraction(x) for x in ints]
    counts = [0] * len(w)
    prio = priority_order(seed, 0, len(w))
    for n in range(1, steps + 1):
        counts[choose(w, counts, range(len(w)), prio)] += 1
        assert all(abs(c - wi / sum(w) * n) < 1 for c, wi in zip(counts, w))


def test_proportions_within_one_at_every_prefix_on_s3(mix_s3):
    """0.5/0.3/0.2 on real shards over S3; web (1 epoch) ends the mixture while code and books
    repeat, so each lane is one blend segment end to end."""
    urls, texts, opts = mix_s3
    cfg = mixture(urls, opts, ends={"code": "repeat", "books": "repeat"},
                  mixture={"end": "epochs", "source": "web", "epochs": 1})
    shards = mix_shards(cfg)
    web = []
    for lane in range(LANES):
        out = lane_run(cfg, shards, lane)
        assert len(out) > 30
        assert_within_one([s for s, _ in out], list(WEIGHTS.values()))
        web += [p for s, pieces in out if s == 0 for p in pieces]
    assert_exactly_once(web, texts["web"])  # the named source: exactly one pass
    loader = Loader(cfg)
    tokens = defaultdict(int)
    for b in loader:
        for r in range(b["input_ids"].shape[0]):
            if b["sample_mask"][r]:
                tokens[int(b["source_ids"][r])] += int(b["input_lengths"][r])
    m = loader.metrics["sources"]
    assert [m[n]["tokens"] for n in WEIGHTS] == [tokens[i] for i in range(3)]
    assert m["web"]["epoch"] == 1 and m["code"]["epoch"] >= 1 and m["books"]["epoch"] >= 1


def test_a_source_ending_early_under_stop_and_under_repeat(mix_s3):
    urls, texts, opts = mix_s3
    # stop: books (the smallest) leaves the blend; web and code go on at 5/8, 3/8
    cfg = mixture(urls, opts)
    shards = mix_shards(cfg)
    for lane in range(LANES):
        segs = segments(build_lane(cfg, shards, lane))
        assert len(segs) >= 2 and len(segs[1][0]) == 2  # one source ended before the others
        for running, sources in segs:
            assert_within_one(sources, running)
    assert_each_source_once([r for lane in range(LANES) for r in lane_run(cfg, shards, lane)],
                            texts)
    # repeat: books cycles (reshuffled each epoch) until web and code have ended
    # books' sequences in each lane are exactly its own stream, epoch after epoch (the
    # reader's per-epoch reshuffle, the packer across the epoch end), longer than one epoch
    cfg = mixture(urls, opts, ends={"books": "repeat"},
                  weights={"web": 0.2, "code": 0.2, "books": 0.6})
    once = []
    for lane in range(LANES):
        out = lane_run(cfg, shards, lane)
        books = [pieces for s, pieces in out if s == 2]
        alone = build_lane(source_pipeline(cfg, 2), shards[2], lane)
        assert books == [next(alone).ledger() for _ in books]
        one_epoch = lane_run(source_pipeline(cfg, 2).model_copy(update={"epochs": 1}),
                             shards[2], lane)
        assert len(books) > len(one_epoch)
        once += [(s, p) for s, p in out if s != 2]
    by = defaultdict(list)
    for s, pieces in once:
        by[s] += pieces
    assert_exactly_once(by[0], texts["web"])
    assert_exactly_once(by[1], texts["code"])


def run_topology(cfg_of, world, workers, state=None, limit=None):
    out = []
    for rank in range(world):
        loader = Loader(cfg_of(workers), rank=rank, world_size=world)
        if state is not None:
            loader.load_state_dict(state)
        got = []
        for b in loader:
            got.append(b)
            if limit is not None and len(got) >= limit:
                break
        out.append((got, loader.state_dict()))
    return out


def test_save_2x2_resume_1x3_and_3x1_exactly_once_per_source(mix_local):
    urls, texts, opts = mix_local
    def cfg_of(workers):
        return mixture(urls, opts, workers=workers)

    def loader_rows(world, workers, state=None, limit=None):
        parts = run_topology(cfg_of, world, workers, state, limit)
        return [r for got, _ in parts for r in rows(got)], [s for _, s in parts]

    first, states = loader_rows(2, 2, limit=4)
    state = json.loads(json.dumps(merge_states(states)))
    for to in [(1, 3), (3, 1)]:
        after, _ = loader_rows(*to, state=state)
        assert_each_source_once(first + after, texts)
    # same topology: the continuation is bit-identical to the uninterrupted run
    full = [got for got, _ in run_topology(cfg_of, 2, 2)]
    resumed = [got for got, _ in run_topology(cfg_of, 2, 2, state=state)]
    for r in range(2):
        want = full[r][4:]
        assert len(resumed[r]) == len(want) > 0
        for a, b in zip(resumed[r], want):
            assert a["input_ids"].equal(b["input_ids"]) and a["pieces"] == b["pieces"]
            assert a["source_ids"].equal(b["source_ids"])


def test_weight_change_at_resume_is_a_new_segment_and_urls_are_refused(mix_s3):
    urls, texts, opts = mix_s3
    cfg = mixture(urls, opts)
    shards = mix_shards(cfg)
    lane = build_lane(cfg, shards, 1)
    before = [next(lane) for _ in range(10)]
    state = json.loads(json.dumps(lane.state_dict()))
    new_w = {"web": 0.2, "code": 0.2, "books": 0.6}
    cfg2 = mixture(urls, opts, weights=new_w)
    lane2 = build_lane(cfg2, shards, 1)
    lane2.load_state_dict(state)
    segs = segments(lane2)
    assert len(segs[0][0]) == 3 and len(segs[0][1]) > 5
    assert_within_one(segs[0][1], list(new_w.values()))  # the new weights, exactly, from here
    # and still exactly once per source, across the change
    ref = lane_run(cfg, shards, 1)
    got = [(s.source, s.ledger()) for s in before] + [
        (s.source, s.ledger()) for s in _resumed(cfg2, shards, state)]
    for i in range(3):
        assert sorted(p for s, ps in got if s == i for p in ps) == sorted(
            p for s, ps in ref if s == i for p in ps)
    # the loader: weights may change, a source's urls may not (the field is named)
    saved = Loader(cfg).state_dict()
    Loader(cfg2).load_state_dict(saved)
    moved = dict(urls, code=urls["code"][::-1])  # the same shards in another order
    with pytest.raises(StateError, match=r"sources\.code\.urls"):
        Loader(mixture(moved, opts)).load_state_dict(saved)


def _resumed(cfg, shards, state):
    lane = build_lane(cfg, shards, 1)
    lane.load_state_dict(state)
    return list(lane)


def test_mixing_stage_resumes_at_every_step(mix_s3):
    urls, _, opts = mix_s3
    cfg = mixture(urls, opts, ends={"books": "repeat"})
    shards = mix_shards(cfg)
    check_resume(lambda: build_lane(cfg, shards, 2), every=3)


def test_tar_arrow_and_precomputed_in_one_mixture_with_a_teacher(tmp_path, small_docs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from xtok_stream.convert.precompute import precompute
    from xtok_stream.io.shards import write_shards

    base = {"student": {"tokenizer": "pkg:qwen2", "seq_len": 128}, "num_lanes": LANES,
            "seed": 2, "batch_size": 4, "teachers": [{"tokenizer": "pkg:mistral-v3"}]}
    pre_docs, tar_docs, arrow_docs = small_docs[:16], small_docs[16:36], small_docs[36:52]
    infos = write_shards(pre_docs, str(tmp_path / "pre-src"), samples_per_shard=4)
    src = load_config(dict(base, source={"urls": [str(tmp_path / "pre-src" / i.name)
                                                  for i in infos]}))
    precompute(src, str(tmp_path / "pre"), sequences_per_shard=4, workers=1)
    infos = write_shards(tar_docs, str(tmp_path / "tar"), samples_per_shard=5)
    shards = [str(tmp_path / "tar" / i.name) for i in infos]
    tar_texts = {d["__key__"]: d["txt"] for d in tar_docs}
    arrow, arrow_texts = [], {}
    for k in range(4):
        part = arrow_docs[k * 4:(k + 1) * 4]
        path = tmp_path / f"part-{k:03d}.parquet"
        pq.write_table(pa.table({"text": [d["txt"] for d in part]}), path, row_group_size=3)
        arrow.append(str(path))
        arrow_texts.update({f"part-{k:03d}-{r:08d}": d["txt"] for r, d in enumerate(part)})
    cfg = load_config(dict(base, sources=[
        {"name": "tar", "urls": shards, "weight": 2},
        {"name": "arrow", "urls": arrow, "format": "arrow", "text_field": "text", "weight": 1},
        {"name": "pre", "urls": [f"{tmp_path}/pre/"], "format": "precomputed", "weight": 1},
    ]))
    batches = list(Loader(cfg))
    by = defaultdict(list)
    for b in batches:
        assert "mistral-v3" in b["teachers"]
        for r in range(b["input_ids"].shape[0]):
            if b["sample_mask"][r]:
                by[int(b["source_ids"][r])] += b["pieces"][r]
    assert_exactly_once(by[0], tar_texts)
    assert_exactly_once(by[1], arrow_texts)
    assert_exactly_once(by[2], {d["__key__"]: d["txt"] for d in pre_docs})


def test_dump_lines_carry_the_source(mix_s3, tmp_path, capsys):
    urls, _, opts = mix_s3
    cfg = mixture(urls, opts)
    path = tmp_path / "mix.yaml"
    path.write_text(json.dumps(json.loads(cfg.model_dump_json(exclude_defaults=True))))
    assert cli_main(["run", str(path), "--max-batches", "8", "--dump", str(tmp_path / "d")]) == 0
    assert "rank 0 sources: web " in capsys.readouterr().out
    lines = [json.loads(x) for x in (tmp_path / "d.rank0").read_text().splitlines()]
    dumped = [(s["source"], s["pieces"]) for line in lines for s in line["sequences"]]
    loader = Loader(cfg)
    want = rows([b for b, _ in zip(loader, range(8))])
    assert dumped == want and len({s for s, _ in want}) >= 2


def test_bad_mixture_configs_are_refused(mix_s3, local_shards):
    urls, _, opts = mix_s3
    with pytest.raises(ConfigError, match="exactly one of source"):
        load_config({"source": {"urls": ["a.tar"]}, "sources": [{"urls": ["b.tar"], "weight": 1}],
                     "student": {"tokenizer": "pkg:qwen2"}})
    with pytest.raises(ConfigError, match="mixture.source"):
        mixture(urls, opts, mixture={"end": "epochs", "source": "nope", "epochs": 1})
    with pytest.raises(ConfigError, match="unique names"):
        load_config({"sources": [{"name": "a", "urls": ["x.tar"], "weight": 1},
                                 {"name": "a", "urls": ["y.tar"], "weight": 1}],
                     "student": {"tokenizer": "pkg:qwen2"}})
    from xtok_stream.convert.precompute import precompute

    with pytest.raises(ConfigError, match="--precompute runs one source"):
        precompute(mixture(urls, opts), "unused-out")
    few = dict(urls, books=urls["books"][:2])  # 2 shards < 4 lanes: lanes 2, 3 never read it
    with pytest.raises(ConfigError, match=r"sources\[2\] \(books\): lane 2 gets no shard"):
        Loader(mixture(few, opts))


def test_the_example_pipeline_loads():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "pipelines" / "mixture.yaml")
    assert cfg.source_names == ["web", "code", "books"] and cfg.mixture.source == "web"
    assert [s.format for s in cfg.sources] == ["tar", "arrow", "precomputed"]
