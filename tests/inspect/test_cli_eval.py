"""``xtok inspect`` end to end (terminal + --html, --resume, typed errors) and the eval view."""

import json
import re

import yaml

from xtok_stream.cli.main import main
from xtok_stream.config import load_config
from xtok_stream.evals import tokenize_record
from xtok_stream.evals.record import EvalRecord
from xtok_stream.inspect import render_eval_html
from xtok_stream.loader import Loader

from .conftest import tree
from .test_view import Page


def _yaml(tmp_path, shards, **over):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(tree(shards, **over)))
    return str(p)


def test_cli_terminal_and_html(inspect_shards, tmp_path, capsys):
    cfg = _yaml(tmp_path, inspect_shards)
    out = tmp_path / "row.html"
    assert main(["inspect", cfg, "--row", "0", "--teacher", "mistral-v3", "--html", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("batch 0, row 0: ") and "piece crafted [0:" in text
    assert "teacher mistral-v3:" in text and "deepseek-v4" not in text.split("wrote")[0]
    assert "truncated_tail" in text and f"wrote {out}" in text
    page = out.read_text(encoding="utf-8")
    meta = json.loads(re.search(r'id="xtok-meta">(.*?)</script>', page).group(1))
    assert [s["teacher"] for s in meta["summaries"]] == ["mistral-v3"]
    assert 0 < meta["summaries"][0]["exact_share"] < 1


def test_cli_resume_shows_the_next_batch(inspect_shards, tmp_path, capsys):
    cfg = _yaml(tmp_path, inspect_shards)
    config = load_config(cfg)
    loader = Loader(config)
    it = iter(loader)
    next(it), next(it)
    state = tmp_path / "state.json"
    state.write_text(json.dumps(loader.state_dict()))
    third = next(it)
    del it
    assert main(["inspect", cfg, "--resume", str(state), "--row", "1"]) == 0
    text = capsys.readouterr().out
    key, c0, c1 = third["pieces"][1][0]
    assert f"after the state in {state}, row 1" in text and f"piece {key} [{c0}:{c1}]" in text


def test_cli_errors_name_the_option(inspect_shards, tmp_path, capsys):
    cfg = _yaml(tmp_path, inspect_shards)
    assert main(["inspect", cfg, "--teacher", "nope"]) == 2
    assert "--teacher" in capsys.readouterr().err
    assert main(["inspect", cfg, "--row", "5"]) == 2
    assert "--row" in capsys.readouterr().err
    assert main(["inspect", cfg, "--batch", "10000"]) == 2
    assert "--batch" in capsys.readouterr().err


def test_eval_record_view():
    rec = EvalRecord(task_id="t/0", benchmark="mmlu", prompt="Q: caf\u00e9 <s> x\u00b2?\nA:")
    tok = tokenize_record(rec)
    page = render_eval_html(tok, student="pkg:qwen2",
                            teachers=["pkg:mistral-v3", "pkg:deepseek-v4"])
    p = Page()
    p.feed(page)
    assert len(p.sections) == 2 and "t/0" in page
    for a, ids, sec in zip(tok.alignments, tok.teacher_ids, p.sections):
        assert len(sec["s"]) == len(tok.student_ids) and len(sec["t"]) == len(ids)
        assert [c for _, c in sec["chunks"] if c >= 0] == list(range(len(a)))
