"""Progress (shard bytes read, off the loader state) and the per-batch metrics hook."""

import io
import json
import math
import os
import shutil
import tarfile

from xtok_stream.cli.main import main
from xtok_stream.config import load_config
from xtok_stream.io.shards import write_shards
from xtok_stream.loader import Loader
from xtok_stream.progress import ByteCounter, StreamProgress, shard_sizes

from .conftest import tree


def _data_end(path):
    with tarfile.open(path) as tf:
        return max(m.offset_data + math.ceil(m.size / 512) * 512 for m in tf)


def test_total_is_every_shard_once_per_epoch_across_ranks(inspect_shards, tmp_path):
    sizes = [os.path.getsize(s) for s in inspect_shards]
    assert shard_sizes(inspect_shards) == sizes  # from manifest.json
    bare = []
    for s in inspect_shards:  # no manifest: sizes from the store
        bare.append(str(tmp_path / os.path.basename(s)))
        shutil.copy(s, bare[-1])
    assert shard_sizes(bare) == sizes
    config = load_config(tree(inspect_shards, epochs=2, num_lanes=4))
    totals = [ByteCounter(Loader(config, rank=r, world_size=2), sizes).total for r in range(2)]
    assert all(t > 0 for t in totals) and sum(totals) == 2 * sum(sizes)


def test_position_follows_what_was_consumed(inspect_shards):
    config = load_config(tree(inspect_shards, epochs=2))
    loader = Loader(config)
    counter = ByteCounter(loader, shard_sizes(inspect_shards))
    seen = [counter.done(loader.state_dict())]
    for _ in loader:
        seen.append(counter.done(loader.state_dict()))
    assert seen[0] == 0 and seen == sorted(seen) and seen[-1] <= counter.total
    trailers = 2 * sum(os.path.getsize(s) - _data_end(s) for s in inspect_shards)
    assert seen[-1] >= counter.total - trailers  # only tar end blocks were never "read"
    # a resumed loader starts where the state is
    resumed = Loader(config)
    first = Loader(config)
    it = iter(first)
    for _ in range(3):
        next(it)
    del it
    resumed.load_state_dict(first.state_dict())
    p = StreamProgress(resumed, file=io.StringIO())
    assert p.start == counter.done(first.state_dict()) > 0


def test_plain_lines_with_total_eta_and_exact_share(inspect_shards):
    loader = Loader(load_config(tree(inspect_shards)))
    out = io.StringIO()
    p = StreamProgress(loader, file=out, interval=0)
    for batch in loader:
        p.update(batch)
    p.close(finished=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == p.batches + 1
    assert all(l.startswith("progress: ") and " MB (" in l and "tok/s" in l for l in lines)
    assert "ETA" in lines[0] and "mistral-v3 exact" in lines[0] and "deepseek-v4 exact" in lines[0]
    assert "(100%)" in lines[-1]
    out2 = io.StringIO()
    p = StreamProgress(Loader(load_config(tree(inspect_shards))), max_batches=2, file=out2,
                       interval=0)
    p.close()
    p.close()  # idempotent
    assert out2.getvalue().count("\n") == 1 and "0/2 batches" in out2.getvalue()


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_bar_on_a_terminal(inspect_shards):
    loader = Loader(load_config(tree(inspect_shards)))
    out = _Tty()
    p = StreamProgress(loader, file=out)
    for batch in loader:
        p.update(batch)
    p.close(finished=True)
    text = out.getvalue()
    assert "100%" in text and "kB/" in text  # bytes as the unit, with a total
    assert "tok/s" in text and "mistral-v3 exact" in text


def test_cli_run_progress_lines(inspect_shards, tmp_path, capsys):
    import yaml

    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(tree(inspect_shards, teachers=[])))
    assert main(["run", str(cfg), "--progress"]) == 0
    out = capsys.readouterr().out
    assert "progress: " in out and "(100%)" in out


def test_batch_metrics_are_flat_numbers_and_count_skips(small_docs, tmp_path):
    docs = small_docs[:5] + [{"__key__": "empty", "txt": ""}] + small_docs[5:9]
    infos = write_shards(docs, str(tmp_path), samples_per_shard=5)
    shards = [str(tmp_path / i.name) for i in infos]
    config = load_config(tree(shards, teachers=[{"tokenizer": "pkg:mistral-v3"}],
                              source={"urls": shards, "on_bad_data": {"empty_document": "skip"}}))
    loader = Loader(config)
    tokens, rows = 0, []
    for batch in loader:
        m = loader.batch_metrics(batch)
        rows.append(m)
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m.values())
        assert all(" " not in k for k in m)
        t = batch["teachers"]["mistral-v3"]
        assert m["teacher/mistral-v3/chunks"] == t["metrics"]["chunks"]
        assert m["teacher/mistral-v3/tokens"] == int(t["input_lengths"].sum())
        assert m["loader/step"] == loader.step
        tokens += m["batch/student_tokens"]
        json.dumps(m)  # loggable as is
    assert tokens == sum(r["batch/student_tokens"] for r in rows) > 0
    assert rows[-1]["loader/skipped/empty_document"] == 1 and rows[-1]["loader/skipped"] == 1
    assert rows[0]["loader/retries"] == 0


def test_convert_progress_is_plain_lines_off_a_terminal(small_docs, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": d["txt"]}) + "\n" for d in small_docs[:30]))
    assert main(["convert", str(src), "--out", str(tmp_path / "out"), "--samples-per-shard", "10",
                 "--workers", "1"]) == 0
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("convert")]
    assert "\r" not in err and lines
    assert "100%" in lines[-1] and "3/3 shards" in lines[-1]
