"""Template files are pinned by content: an edited file refuses an old loader state naming
``chat.templates.NAME``, and a process that would render an edited file refuses to; a teacher's
render error names the conversation's shard URL."""

from __future__ import annotations

import json

import pytest

from tests.chat.conftest import chat_config
from xtok_stream.chat.templates import CHATML, LLAMA3_STYLE
from xtok_stream.config import load_config
from xtok_stream.errors import ConfigError, DecodeError, StateError
from xtok_stream.loader import Loader
from xtok_stream.pipeline import build_lane


def _cfg(shards, path):
    cfg = chat_config(shards[:2], seq_len=128, teachers=("pkg:deepseek-v4",))
    cfg["chat"]["templates"]["deepseek-v4"] = str(path)
    cfg.update(num_lanes=1, batch_size=2)
    return load_config(cfg)


def test_an_edited_template_file_refuses_the_old_state(chat_shards, tmp_path):
    shards, _ = chat_shards
    path = tmp_path / "llama3.jinja"
    path.write_text(LLAMA3_STYLE)
    loader = Loader(_cfg(shards, path), rank=0, world_size=1)
    next(iter(loader))
    state = json.loads(json.dumps(loader.state_dict()))
    # unchanged file: the state loads
    Loader(_cfg(shards, path), rank=0, world_size=1).load_state_dict(state)
    moved = tmp_path / "moved.jinja"
    moved.write_text(LLAMA3_STYLE)
    with pytest.raises(StateError, match=r"chat\.templates\.deepseek-v4\.file"):
        Loader(_cfg(shards, moved), rank=0, world_size=1).load_state_dict(state)
    path.write_text(LLAMA3_STYLE + "{# edited #}")
    with pytest.raises(StateError, match=r"chat\.templates\.deepseek-v4\.sha256"):
        Loader(_cfg(shards, path), rank=0, world_size=1).load_state_dict(state)


def test_a_file_edited_after_loading_the_config_is_not_rendered(chat_shards, tmp_path):
    shards, _ = chat_shards
    path = tmp_path / "llama3.jinja"
    path.write_text(LLAMA3_STYLE)
    cfg = _cfg(shards, path)
    path.write_text(LLAMA3_STYLE.replace("eos_token", "'\\n'"))
    with pytest.raises(ConfigError, match="changed since the pipeline config was loaded.*"
                                          r"chat\.templates\.deepseek-v4"):
        next(build_lane(cfg, shards[:2], 0))


def test_a_teacher_render_error_names_the_shard(tmp_path):
    """The student (ChatML) renders padded content as is; the teacher's Llama-3 layout trims it,
    which is a DecodeError naming the shard URL and the conversation's key."""
    from xtok_stream.io.shards import write_shards

    msgs = [{"role": "user", "content": "  padded question  "},
            {"role": "assistant", "content": "an answer"}]
    infos = write_shards([{"__key__": "conv-0", "messages": json.dumps(msgs)}], str(tmp_path),
                         samples_per_shard=1)
    shard = str(tmp_path / infos[0].name)
    cfg = chat_config([shard], seq_len=128, teachers=("pkg:deepseek-v4",))
    cfg["chat"]["templates"] = {"student": CHATML, "deepseek-v4": LLAMA3_STYLE}
    cfg.update(num_lanes=1)
    with pytest.raises(DecodeError, match="strip_content") as err:
        next(build_lane(load_config(cfg), [shard], 0))
    assert f"url={shard}" in str(err.value) and "conv-0" in str(err.value)
