"""Rendering: each model's text and ids are its template's own (apply_chat_template or
mistral-common), masks cover exactly the assistant contents, bad input is a typed error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xtok_stream.chat.messages import parse_messages
from xtok_stream.chat.render import renderer
from xtok_stream.chat.templates import CHATML, LLAMA3_STYLE
from xtok_stream.errors import ConfigError, DecodeError
from xtok_stream.tokenizers import load_tokenizer

JINJA = [("pkg:qwen2", CHATML), ("pkg:deepseek-v4", LLAMA3_STYLE)]


def _conversations(system: bool):
    from xtok_stream.chat.corpus import iter_conversations

    return [parse_messages(s["messages"], url="", key=s["__key__"], field="messages")
            for s in iter_conversations(18, system=system, max_chars=300)]


def check_masks(r) -> None:
    """Masked tokens are exactly the assistant contents' tokens (+ each one's end of turn), and
    together they cover every assistant content character."""
    mask = r.loss_mask(end_of_turn=True)
    for k, role in enumerate(r.roles):
        cs, ce = r.content_chars[k]
        a, b = r.content[k]
        if role != "assistant":
            assert not mask[a:b].any()
            continue
        assert mask[a:b].all()
        covered = np.zeros(ce - cs, bool)
        for t in range(a, b):
            s, e = max(r.starts[t], cs), min(r.ends[t], ce)
            assert s < e, "a masked token outside its content"
            assert not r.text[r.starts[t] : s].strip() and not r.text[e : r.ends[t]].strip()
            covered[s - cs : e - cs] = True
        assert covered.all(), f"assistant content chars not masked: {np.flatnonzero(~covered)[:5]}"
        eot = r.eot[k]
        assert eot == b or not r.text[r.starts[b] : r.starts[eot]].strip()
        assert mask[eot] == 1
    real = mask.copy()
    real[r.eot[r.eot >= 0]] = 0
    assistant = np.zeros(len(mask), bool)
    for k, role in enumerate(r.roles):
        if role == "assistant":
            assistant[r.content[k, 0] : r.content[k, 1]] = True
    assert np.array_equal(real.astype(bool) & ~np.isin(np.arange(len(mask)), r.eot), assistant)


@pytest.mark.parametrize("tok,template", JINJA)
def test_jinja_rendering_equals_apply_chat_template(tok, template):
    hf = load_tokenizer(tok)
    rend = renderer(tok, template, f"test {tok}")
    for msgs in _conversations(system=True):
        dicts = [{"role": r, "content": c} for r, c in msgs]
        r = rend.render(msgs)
        assert r.text == hf.apply_chat_template(dicts, tokenize=False, chat_template=template)
        ref = hf.apply_chat_template(dicts, tokenize=True, chat_template=template)
        ref = ref["input_ids"] if isinstance(ref, dict) or hasattr(ref, "keys") else ref
        assert r.ids.tolist() == list(ref)
        for k, (_, content) in enumerate(msgs):  # spans hold the contents verbatim
            cs, ce = r.content_chars[k]
            assert r.text[cs:ce] == content
        assert r.bounds[0] == 0 and r.bounds[-1] == len(r.ids)
        assert np.all(np.diff(r.bounds) >= 0)
        check_masks(r)


def test_mistral_common_rendering_equals_its_encoding():
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    path = MistralTokenizer.v3().instruct_tokenizer.tokenizer.file_path
    mt = MistralTokenizer.from_file(str(path), mode=ValidationMode.finetuning)
    rend = renderer("pkg:mistral-v3", "mistral-common", "test mistral")
    for msgs in _conversations(system=False):
        r = rend.render(msgs)
        req = ChatCompletionRequest(messages=[{"role": a, "content": c} for a, c in msgs])
        tokenized = mt.encode_chat_completion(req)
        assert r.ids.tolist() == tokenized.tokens
        for k, (_, content) in enumerate(msgs):
            cs, ce = r.content_chars[k]
            assert r.text[cs:ce] == content
        check_masks(r)


def test_mistral_common_refuses_system_prompts_by_name():
    rend = renderer("pkg:mistral-v3", "mistral-common", "chat template of teacher mistral-v3")
    with pytest.raises(ValueError, match="teacher mistral-v3.*chat.templates"):
        rend.render((("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")))


def test_a_trimming_template_needs_strip_content():
    msgs = (("user", "  padded question  "), ("assistant", "answer"))
    rend = renderer("pkg:deepseek-v4", LLAMA3_STYLE, "chat template of teacher deepseek-v4")
    with pytest.raises(ValueError, match="strip_content"):
        rend.render(msgs)
    stripped = parse_messages(json.dumps([{"role": r, "content": c} for r, c in msgs]),
                              url="u", key="k", field="messages", strip=True)
    assert rend.render(stripped).text.count("padded question<") == 1


def test_no_template_is_a_config_error_naming_the_option():
    with pytest.raises(ConfigError, match="chat.templates.student"):
        renderer("pkg:qwen2", None, "chat template of student")


@pytest.mark.parametrize("raw,match", [
    ("not json", "not valid JSON"),
    ("[]", "non-empty JSON list"),
    ('[{"role": "robot", "content": "x"}]', "role 'robot'"),
    ('[{"role": "user"}]', "string 'content'"),
])
def test_bad_messages_name_shard_key_and_field(raw, match):
    with pytest.raises(DecodeError, match=match) as err:
        parse_messages(raw, url="s3://b/shard-0.tar", key="conv-7", field="messages")
    assert "s3://b/shard-0.tar" in str(err.value) and "conv-7" in str(err.value)
    assert err.value.field == "messages"
