"""Chat packing and alignment on real shards with real tokenizers and templates: whole
conversations (split only at message boundaries, or truncated and counted), position ids per
conversation, loss masks, exact chunks inside one message's content and byte-verified, template
runs paired per message, and resume at every step (check_resume)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chat.conftest import TEMPLATES, chat_config
from tests.helpers import assert_exactly_once
from xtok_stream.align import UnalignedReason
from xtok_stream.align.tables import byte_table
from xtok_stream.chat.render import renderer
from xtok_stream.chat.teacher import TEMPLATE_UNPAIRED
from xtok_stream.config import load_config
from xtok_stream.pipeline import build_consumer, build_lane
from xtok_stream.state import StatefulMap
from xtok_stream.testing import check_resume
from xtok_stream.tokenizers import load_tokenizer

TEACHERS = {"deepseek-v4": "pkg:deepseek-v4", "mistral-v3": "pkg:mistral-v3"}


def student_render(msgs):
    m = tuple((d["role"], d["content"]) for d in msgs)
    return renderer("pkg:qwen2", TEMPLATES["student"], "chat template of student").render(m)


def lane_sequences(cfg, shards):
    out = []
    for lane in range(cfg.num_lanes):
        stage = build_lane(cfg, shards, lane)
        out += list(stage)
        stage.close()
    return out


def test_whole_conversations_split_only_at_message_boundaries(chat_shards):
    shards, convs = chat_shards
    cfg = load_config(chat_config(shards, seq_len=96, teachers=()))
    rendered = {k: student_render(m) for k, m in convs.items()}
    assert any(len(r.ids) > 96 for r in rendered.values())  # some conversations must split
    rows = []
    for batch in build_consumer(cfg, shards):
        for b in range(batch["input_ids"].shape[0]):
            if not batch["sample_mask"][b]:
                continue
            n = int(batch["input_lengths"][b])
            pos, doc = batch["position_ids"][b, :n].numpy(), batch["doc_ids"][b, :n].numpy()
            start = 0
            for i, (key, c0, c1) in enumerate(batch["pieces"][b]):
                r = rendered[key]
                t0 = int(np.searchsorted(r.starts, c0))
                k = np.flatnonzero(r.bounds == t0)
                assert len(k), f"{key}: piece starts at char {c0}, not a message boundary"
                length = int((doc == i).sum())
                assert pos[start : start + length].tolist() == list(range(length))
                want = r.loss_mask()[t0 : t0 + length]
                assert batch["loss_mask"][b, start : start + length].numpy().tolist() == want.tolist()
                assert batch["input_ids"][b, start : start + length].tolist() == \
                    r.ids[t0 : t0 + length].tolist()
                start += length
                rows.append([key, c0, c1])
            assert not batch["loss_mask"][b, n:].any()
    assert_exactly_once(rows, {k: r.text for k, r in rendered.items()})


def test_truncate_keeps_the_head_and_counts_the_tail(chat_shards):
    shards, convs = chat_shards
    L = 64
    cfg = load_config(chat_config(shards, seq_len=L, teachers=(), overflow="truncate"))
    rendered = {k: student_render(m) for k, m in convs.items()}
    total, seen = 0, {}
    for lane in range(cfg.num_lanes):
        stage = build_lane(cfg, shards, lane)
        for seq in stage:
            for p in seq.pieces:
                assert p.key not in seen and p.char_start == 0 and p.ends_document
                seen[p.key] = p.token_end - p.token_start
        total += stage.state_dict()["truncated_tokens"]
        stage.close()
    assert seen == {k: min(len(r.ids), L) for k, r in rendered.items()}
    assert total == sum(max(0, len(r.ids) - L) for r in rendered.values()) > 0


def test_a_message_longer_than_seq_len_is_cut_and_counted(chat_shards):
    shards, convs = chat_shards
    L = 24
    cfg = load_config(chat_config(shards, seq_len=L, teachers=()))
    rendered = {k: student_render(m) for k, m in convs.items()}
    want = sum(max(0, int(d) - L) for r in rendered.values() for d in np.diff(r.bounds))
    assert want > 0
    total = 0
    for lane in range(cfg.num_lanes):
        stage = build_lane(cfg, shards, lane)
        for _ in stage:
            pass
        total += stage.state_dict()["truncated_tokens"]
        stage.close()
    assert total == want


def _teacher_render(name, msgs):
    return renderer(TEACHERS[name], TEMPLATES[name], f"chat template of teacher {name}").render(msgs)


def test_exact_chunks_lie_in_one_content_and_bytes_match(chat_shards):
    shards, _ = chat_shards
    cfg = load_config(chat_config(shards, seq_len=160))
    st = byte_table(load_tokenizer("pkg:qwen2"))
    exact_total = template_pairs = 0
    for seq in lane_sequences(cfg, shards):
        for name in TEACHERS:
            v = seq.extras[name]
            tt = byte_table(load_tokenizer(TEACHERS[name]))
            # per message: (student region, student content, teacher region, teacher content, text)
            regions, t_off = [], 0
            for cp in seq.extras["_chat"]:
                r = _teacher_render(name, cp.messages)
                t0 = int(r.bounds[cp.lo])
                tb = r.bounds[cp.lo : cp.hi + 1] - t0 + t_off
                if cp.cut_chars is not None:  # a cut part is its sequence's last
                    tb[-1] = 1 << 30
                for j in range(cp.hi - cp.lo):
                    regions.append((cp.bounds[j], cp.bounds[j + 1], cp.content[j], tb[j],
                                    tb[j + 1], r.content[cp.lo + j] - t0 + t_off,
                                    cp.messages[cp.lo + j][1]))
                t_off = int(tb[-1])
            for (s0, s1), (u0, u1), ex in zip(v["student_spans"].tolist(),
                                              v["teacher_spans"].tolist(), v["exact"]):
                home = [g for g in regions if g[0] <= s0 and s1 <= g[1]]
                assert len(home) == 1, f"chunk {s0}-{s1} spans two messages"
                sb0, sb1, sc, tb0, tb1, tc, content = home[0]
                assert tb0 <= u0 and u1 <= tb1, "teacher side of a chunk in another message"
                inside = sc[0] <= s0 and s1 <= sc[1]
                if not inside:
                    assert not ex
                    template_pairs += 1
                    continue
                assert tc[0] <= u0 and u1 <= tc[1]
                if ex:
                    sbytes = st.ids_bytes(seq.input_ids[s0:s1])
                    tbytes = tt.ids_bytes(v["input_ids"][u0:u1])
                    if tt.dummy_prefix and u0 == tc[0] and not content.startswith(" "):
                        tbytes = tbytes.removeprefix(b" ")
                    assert sbytes == tbytes and sbytes in content.encode()
                    exact_total += 1
            un = v["student_unaligned"]
            assert set(un[:, 1].tolist()) <= {TEMPLATE_UNPAIRED, *range(8)}
            assert len(v["loss_mask"]) == len(v["input_ids"])
    assert exact_total > 500 and template_pairs > 50


class _Flat(StatefulMap):
    """Every field of every item, teachers included, for check_resume's comparison."""

    KIND, VERSION = "flat", 1

    def __init__(self, source):
        self.source = source

    def __iter__(self):
        return self

    def __next__(self):
        seq = next(self.source)
        out = {"ids": seq.input_ids, "n": np.array([seq.length]), "ledger": seq.ledger(),
               "mask": seq.extras["_loss_mask"]}
        for name in TEACHERS:
            for k, x in seq.extras[name].items():
                out[f"{name}.{k}"] = np.asarray(x)
        return out


@pytest.mark.parametrize("overflow", ["split", "truncate"])
def test_resume_at_every_step(chat_shards, overflow):
    shards, _ = chat_shards
    cfg = load_config(chat_config(shards[:2], seq_len=80, overflow=overflow))
    items = check_resume(lambda: _Flat(build_lane(cfg, shards[:2], 0)), every=1)
    assert len(items) > 5


def test_arrow_source_with_a_json_messages_column(chat_samples, tmp_path):
    """Parquet rows holding the conversation as JSON text read in place (source.format arrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [s["__key__"] for s in chat_samples],
                             "messages": [s["messages"] for s in chat_samples]}),
                   tmp_path / "convs.parquet", row_group_size=8)
    cfg = chat_config([str(tmp_path / "convs.parquet")], seq_len=128, teachers=())
    cfg["source"]["format"] = "arrow"
    cfg = load_config(cfg)
    rows = [row for seq in lane_sequences(cfg, [str(tmp_path / "convs.parquet")])
            for row in seq.ledger()]
    by_text = {}
    for s in chat_samples:
        by_text[s["messages"]] = student_render(__import__("json").loads(s["messages"])).text
    assert len(rows) >= len(chat_samples)
    covered = {}
    for key, c0, c1 in rows:
        covered[key] = covered.get(key, 0) + (c1 - c0)
    assert sorted(covered.values()) == sorted(len(t) for t in by_text.values())


def test_chunks_and_unaligned_partition_both_sides_under_max_len(chat_shards):
    """Every student and teacher token is in exactly one chunk or listed unaligned; a teacher
    cut by max_len leaves the student's rest unaligned as a truncated tail."""
    shards, _ = chat_shards
    cfg = chat_config(shards[:2], seq_len=160, teachers=("pkg:deepseek-v4",))
    cfg["teachers"][0]["max_len"] = 64
    reasons = set()
    for seq in lane_sequences(load_config(cfg), shards[:2]):
        v = seq.extras["deepseek-v4"]
        assert len(v["input_ids"]) <= 64
        for spans, un, n in ((v["student_spans"], v["student_unaligned"], seq.length),
                             (v["teacher_spans"], v["teacher_unaligned"], len(v["input_ids"]))):
            cover = np.zeros(n, int)
            for a, b in spans.tolist():
                cover[a:b] += 1
            np.add.at(cover, un[:, 0], 1)
            assert (cover == 1).all(), np.flatnonzero(cover != 1)[:10]
            assert np.all(spans[1:, 0] >= spans[:-1, 1])  # monotone
        reasons |= set(v["student_unaligned"][:, 1].tolist())
    assert int(UnalignedReason.TRUNCATED_TAIL) in reasons


def _chat_pack_state(state):
    """The chat packer's own state inside a lane state (under the teacher stages, if any)."""
    while state.get("kind") != "chat_pack":
        state = state["source"]
    return state


@pytest.fixture(scope="module")
def split_chat_state(chat_shards):
    """(make a chat lane, a real state taken inside a split conversation: skip > 0)."""
    shards, _ = chat_shards
    cfg = load_config(chat_config(shards[:2], seq_len=64, teachers=()))

    def make():
        return build_lane(cfg, shards[:2], 0)

    lane = make()
    for _ in range(40):
        next(lane)
        state = lane.state_dict()
        if _chat_pack_state(state)["skip"] > 0:
            break
    lane.close()
    assert _chat_pack_state(state)["skip"] > 0
    return make, state


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_edited_chat_lane_state_is_always_refused(split_chat_state, data):
    """The chat packer's cursor is checked like the text packer's (they share OpenItemCursor):
    a skip past the conversation's messages, a type swap, a missing or unknown field is a
    StateError naming the field, never a silent repeat or drop."""
    from tests.stream.test_state_validation import EDITS, assert_refused, edit, leaves

    make, state = split_chat_state
    path = data.draw(st.sampled_from([p for p, _ in leaves(state)]), label="path")
    how = data.draw(st.sampled_from(EDITS), label="edit")
    if path and path[-1] == "truncated_tokens" and how == "huge":
        return  # a counter: any non-negative count is valid
    edited = edit(state, path, how)
    if edited is not None:
        assert_refused(make, edited)


def test_a_skip_past_the_conversation_names_the_field(split_chat_state):
    import copy

    from tests.stream.test_state_validation import assert_refused

    make, state = split_chat_state
    bad = copy.deepcopy(state)
    _chat_pack_state(bad)["skip"] = 10_000
    assert assert_refused(make, bad).startswith("skip: 10000 messages of '")
    bad = copy.deepcopy(state)
    _chat_pack_state(bad)["truncated_tokens"] = "3"
    assert assert_refused(make, bad).startswith("truncated_tokens: must be an integer")
