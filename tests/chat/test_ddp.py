"""Conversations under torchrun: 2 gloo ranks x 1 DataLoader worker with two teachers, through
`xtok run` and pipelines/chat-distill.yaml; every conversation part exactly once, equal batch
counts, bit-identical resume; and elastic resume under other topologies in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chat.conftest import chat_config
from tests.chat.test_pack import student_render
from tests.helpers import assert_exactly_once
from tests.stream.test_ddp_cli import pieces, read_dump, xtok_run
from xtok_stream.chat.render import renderer
from xtok_stream.chat.templates import CHATML, LLAMA3_STYLE
from xtok_stream.config import load_config
from xtok_stream.loader import Loader, merge_states

pytestmark = pytest.mark.slow
YAML = str(Path(__file__).resolve().parents[2] / "pipelines" / "chat-distill.yaml")


def test_the_pipeline_yaml_carries_the_upstream_templates(chat_shards):
    cfg = load_config(YAML)
    _, convs = chat_shards
    msgs = tuple((m["role"], m["content"]) for m in next(iter(convs.values())))
    for tok, name, ref in (("pkg:qwen2", "student", CHATML), ("pkg:deepseek-v4", "deepseek-v4",
                                                              LLAMA3_STYLE)):
        a = renderer(tok, cfg.chat.templates[name], "yaml").render(msgs)
        b = renderer(tok, ref, "module").render(msgs)
        assert a.text == b.text and a.ids.tolist() == b.ids.tolist()


def test_two_ranks_exactly_once_and_resume(chat_shards, tmp_path):
    shards, convs = chat_shards
    texts = {k: student_render(m).text for k, m in convs.items()}
    common = ["--set", f"source.urls={Path(shards[0]).parent}/", "--set", "student.seq_len=128",
              "--set", "teachers=[{tokenizer: pkg:deepseek-v4, max_len: 256},"
                       " {tokenizer: pkg:mistral-v3, max_len: 256}]",
              "--set", "batch_size=2", "--set", "num_workers=1", "--set", "num_lanes=4",
              "--set", "pad_to_multiple_of=1", "--set", "shuffle.buffer=3"]
    xtok_run([YAML, *common, "--dump", "full"], 2, tmp_path)
    full = read_dump(tmp_path / "full", 2)
    assert len(full[0]) == len(full[1]) > 3
    assert_exactly_once(pieces(full), texts)
    seqs = [s for lines in full.values() for line in lines for s in line["sequences"]]
    assert all(set(s["teachers"]) == {"deepseek-v4", "mistral-v3"} for s in seqs)

    xtok_run([YAML, *common, "--max-batches", "2", "--save-state", "state.json", "--dump", "a"],
             2, tmp_path)
    xtok_run([YAML, *common, "--resume", "state.json", "--dump", "b"], 2, tmp_path)
    a, b = read_dump(tmp_path / "a", 2), read_dump(tmp_path / "b", 2)
    for r in range(2):
        assert a[r] + b[r] == full[r], f"rank {r}: resumed run differs"


@pytest.mark.parametrize("to", [(1, 2), (3, 0)])
def test_elastic_resume_under_another_topology(chat_shards, to):
    """Saved by 2 ranks x 1 worker mid-epoch, resumed by other topologies (in-process Loaders
    with explicit rank/world_size, as torchrun gives each process): exactly once."""
    shards, convs = chat_shards
    texts = {k: student_render(m).text for k, m in convs.items()}
    cfg = load_config(chat_config(shards, seq_len=128, teachers=("pkg:deepseek-v4",)))

    def run(world, workers, state=None, limit=None):
        out, states = [], []
        for rank in range(world):
            loader = Loader(cfg.model_copy(update={"num_workers": workers}), rank=rank,
                            world_size=world)
            if state is not None:
                loader.load_state_dict(state)
            for i, batch in enumerate(loader):
                out += [p for b, row in enumerate(batch["pieces"]) if batch["sample_mask"][b]
                        for p in row]
                if limit is not None and i + 1 >= limit:
                    break
            states.append(loader.state_dict())
        return out, states

    before, states = run(2, 1, limit=2)
    state = json.loads(json.dumps(merge_states(states)))
    after, _ = run(*to, state=state)
    assert_exactly_once(before + after, texts)
