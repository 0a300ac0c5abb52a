"""One real render per conversation and model: the sentinel skeleton is cached per roles
sequence, and what comes out equals a renderer that builds it afresh every time."""

from __future__ import annotations

import numpy as np

from xtok_stream.chat.messages import parse_messages
from xtok_stream.chat.render import JinjaRenderer
from xtok_stream.chat.templates import CHATML, LLAMA3_STYLE


def _convs(chat_samples, strip=False):
    return [parse_messages(s["messages"], url="u", key=s["__key__"], field="messages",
                           strip=strip) for s in chat_samples]


def test_one_template_render_per_conversation(chat_samples):
    convs = _convs(chat_samples)
    rend = JinjaRenderer("pkg:qwen2", CHATML, "chat template of student")
    calls = []
    apply = rend._apply
    rend._apply = lambda msgs: calls.append(1) or apply(msgs)
    for msgs in convs:
        rend.render(msgs)
    shapes = {tuple(r for r, _ in m) for m in convs}
    assert len(calls) == len(convs) + len(shapes) < 2 * len(convs)


def test_cached_skeletons_render_as_fresh_ones(chat_samples):
    for tok, template, strip in (("pkg:qwen2", CHATML, False),
                                 ("pkg:deepseek-v4", LLAMA3_STYLE, True)):
        convs = _convs(chat_samples, strip)
        cached = JinjaRenderer(tok, template, "t")
        for msgs in convs:
            a = cached.render(msgs)
            b = JinjaRenderer(tok, template, "t").render(msgs)
            assert a.text == b.text and a.roles == b.roles
            for f in ("ids", "starts", "ends", "content_chars", "content", "bounds", "eot"):
                np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
            assert a.text == cached.tok.apply_chat_template(
                [{"role": r, "content": c} for r, c in msgs], tokenize=False,
                chat_template=template)
