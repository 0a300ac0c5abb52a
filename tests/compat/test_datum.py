"""compat.nemo_rl with NeMo-RL DatumSpec samples, built the way NeMo-RL's ``kd_data_processor``
builds them (a user and an assistant turn, ``raw_text`` in ``extra_env_info``).

The contract, as upstream (``rl_collate_fn`` + the cross-tokenizer collator) defines it:
- batch keys: rl_collate_fn's ``message_log, length, loss_multiplier, extra_env_info, task_name,
  idx, batch_max_length, stop_strings`` plus ``input_ids, input_lengths, token_mask,
  sample_mask, flat_messages, per_teacher_ct_data``;
- ``length``/``batch_max_length`` int64 [B] (``batch_max_length`` = max length on every row),
  ``loss_multiplier`` float32 [B], ``input_ids`` int64 [B, T] padded with ``pad_token_id``,
  T = longest row rounded up to ``make_sequence_length_divisible_by``, ``input_lengths`` int32,
  ``token_mask`` = flattened ``token_loss_mask`` (ones on assistant tokens, zeros elsewhere
  unless a message sets it), ``sample_mask`` = ``loss_multiplier``;
- ``flat_messages``: ``content``/``role`` per sample as lists, ``token_ids`` = ``input_ids``;
- every container has ``.to()``, ``.shard_by_batch_size()``, ``.get_multimodal_dict()``.
Every test runs on the built-in containers and, where ``nemo_rl`` is importable, on NeMo-RL's.
"""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xtok_stream.compat import nemo_rl as compat
from xtok_stream.compat.batched import BatchedDict, nemo_rl_api
from xtok_stream.compat.datum import (
    SampleTypeError,
    SampleValueError,
    flatten,
    int_ids,
    prepare_datums,
)
from xtok_stream.compat.nemo_rl import CrossTokenizerCollator
from xtok_stream.demo_corpus import iter_documents
from xtok_stream.errors import ConfigError, DecodeError

from .test_nemo_rl import STUDENT, TEACHERS, TextDataset, assert_batches_equal, spec

RL_KEYS = {"message_log", "length", "loss_multiplier", "extra_env_info", "task_name", "idx",
           "batch_max_length", "stop_strings"}
TRAIN_KEYS = {"input_ids", "input_lengths", "token_mask", "sample_mask", "flat_messages",
              "per_teacher_ct_data"}


@pytest.fixture(params=["builtin", "nemo_rl"])
def use_nemo_rl(request):
    if request.param == "nemo_rl" and nemo_rl_api() is None:
        pytest.skip("nemo_rl is not importable (not on PyPI)")
    return request.param == "nemo_rl"


def kd_datum(tok, prompt: str, answer: str, idx: int, **extra) -> dict:
    """A DatumSpec as kd_data_processor returns it: one message per turn with its token ids."""
    log = []
    for role, text in (("user", prompt), ("assistant", answer)):
        ids = torch.tensor(tok(text, add_special_tokens=False)["input_ids"], dtype=torch.int64)
        log.append({"role": role, "content": text, "token_ids": ids})
    return {"message_log": log, "length": sum(len(m["token_ids"]) for m in log),
            "extra_env_info": {"raw_text": prompt + answer}, "loss_multiplier": 1.0, "idx": idx,
            "task_name": "kd", "stop_strings": None, **extra}


@pytest.fixture(scope="module")
def pairs():
    docs = [d["text"] for d in iter_documents(limit=8)]
    out = [("Question: what is 2+2?\n", "Answer: 4."), ("¿Qué tal? ", "Très bien — 谢谢!")]
    return out + [(d[:120], d[120:400]) for d in docs]


@pytest.fixture(scope="module")
def datums(qwen2, pairs):
    return [kd_datum(qwen2, p, a, i, source_file=f"f{i}.jsonl") for i, (p, a) in enumerate(pairs)]


def collator(qwen2, use_nemo_rl, div=8, specs=None):
    specs = [spec(TEACHERS[0], 96), None, spec(TEACHERS[1], 160)] if specs is None else specs
    return CrossTokenizerCollator(qwen2.pad_token_id, div, specs, use_nemo_rl=use_nemo_rl)


def test_every_upstream_key_dtype_and_shape(qwen2, datums, use_nemo_rl):
    out = collator(qwen2, use_nemo_rl)(datums)
    b = len(datums)
    assert set(out.keys()) >= RL_KEYS | TRAIN_KEYS  # newer nemo_rl also adds dataset_names
    if not use_nemo_rl:
        assert set(out.keys()) == RL_KEYS | TRAIN_KEYS
    lengths = [sum(len(m["token_ids"]) for m in d["message_log"]) for d in datums]
    assert out["length"].dtype == torch.int64 and out["length"].tolist() == lengths
    assert out["batch_max_length"].dtype == torch.int64
    assert out["batch_max_length"].tolist() == [max(lengths)] * b
    assert out["loss_multiplier"].dtype == torch.float32 and out["loss_multiplier"].shape == (b,)
    assert out["extra_env_info"] == [d["extra_env_info"] for d in datums]
    assert out["task_name"] == ["kd"] * b and out["idx"] == list(range(b))
    assert out["stop_strings"] == [None] * b
    width = -(-max(lengths) // 8) * 8
    assert out["input_ids"].dtype == torch.int64 and out["input_ids"].shape == (b, width)
    assert out["input_lengths"].dtype == torch.int32 and out["input_lengths"].tolist() == lengths
    assert out["token_mask"].shape == (b, width)
    assert torch.equal(out["sample_mask"], out["loss_multiplier"])
    flat = out["flat_messages"]
    assert {"content", "role", "token_ids", "token_loss_mask"} <= set(flat.keys())
    assert flat["token_ids"] is out["input_ids"] and flat["token_loss_mask"] is out["token_mask"]
    for i, d in enumerate(datums):
        user, asst = d["message_log"]
        nu, na = len(user["token_ids"]), len(asst["token_ids"])
        assert flat["content"][i] == [user["content"], asst["content"]]
        assert flat["role"][i] == ["user", "assistant"]
        row = out["input_ids"][i]
        assert torch.equal(row[:nu], user["token_ids"]) and torch.equal(row[nu:nu + na], asst["token_ids"])
        assert (row[nu + na:] == qwen2.pad_token_id).all()
        # role-based default: assistant tokens 1, user tokens and padding 0
        assert out["token_mask"][i].tolist() == [0] * nu + [1] * na + [0] * (width - nu - na)
        # the message_log carries the mask too; the caller's dicts are left as they were
        assert out["message_log"][i][1]["token_loss_mask"].tolist() == [1] * na
        assert "token_loss_mask" not in asst
    per = out["per_teacher_ct_data"]
    assert len(per) == 3 and per[1] is None
    for entry, max_len in ((per[0], 96), (per[2], 160)):
        td = entry["teacher_data"]
        assert set(td.keys()) == {"input_ids", "input_lengths", "token_mask", "sample_mask"}
        assert td["input_ids"].shape == (b, max_len) and td["token_mask"].dtype == torch.float32
        assert td.to("cpu") is td and td.to(torch.device("cpu"))["input_ids"].device.type == "cpu"
        assert torch.equal(td["sample_mask"], out["sample_mask"])
    if not use_nemo_rl:
        assert type(out) is BatchedDict and type(flat) is BatchedDict
        assert type(per[0]["teacher_data"]) is BatchedDict
    assert flat.get_multimodal_dict(as_tensors=False) == {}


def test_teachers_see_raw_text_and_match_the_simple_form(qwen2, datums, use_nemo_rl):
    """The teacher side of a DatumSpec batch is that of the simple form holding the flattened ids
    and extra_env_info's raw_text; without raw_text both decode the student rows."""
    coll = collator(qwen2, use_nemo_rl)
    simple = [{"input_ids": torch.cat([m["token_ids"] for m in d["message_log"]]),
               "raw_text": d["extra_env_info"]["raw_text"]} for d in datums]  # fmt: skip
    got, want = coll(datums), coll(simple)
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert_batches_equal(list(got["per_teacher_ct_data"]), list(want["per_teacher_ct_data"]))
    t_ids = got["per_teacher_ct_data"][2]["teacher_input_ids"]
    from xtok_stream.tokenizers import load_tokenizer

    deepseek = load_tokenizer(TEACHERS[1])
    raw = datums[1]["extra_env_info"]["raw_text"]
    enc = deepseek(raw)["input_ids"]
    assert t_ids[1, : len(enc)].tolist() == enc
    no_text = [{**d, "extra_env_info": None} for d in datums[:4]]
    fallback = CrossTokenizerCollator(qwen2.pad_token_id, 8, [spec(TEACHERS[1], 160)],
                                      fallback_student_tokenizer_name=STUDENT,
                                      use_nemo_rl=use_nemo_rl)  # fmt: skip
    a = fallback(no_text)["per_teacher_ct_data"][0]
    b = fallback([{"input_ids": s["input_ids"]} for s in simple[:4]])["per_teacher_ct_data"][0]
    assert_batches_equal(dict(a), dict(b))


def test_explicit_token_loss_mask_and_other_roles(qwen2, use_nemo_rl):
    d = kd_datum(qwen2, "You are terse.", "Ok.", 0)
    d["message_log"].insert(0, {"role": "system", "content": "sys",
                                "token_ids": torch.tensor([1, 2, 3])})  # fmt: skip
    d["message_log"][1]["token_loss_mask"] = torch.ones(len(d["message_log"][1]["token_ids"]),
                                                        dtype=torch.int64)  # fmt: skip
    out = collator(qwen2, use_nemo_rl, div=1, specs=[None])([d])
    n = [len(m["token_ids"]) for m in d["message_log"]]
    assert out["token_mask"][0].tolist() == [0] * n[0] + [1] * n[1] + [1] * n[2]
    assert out["input_ids"].shape == (1, sum(n))


@pytest.mark.parametrize("div", [1, 3, 8, 64])
def test_make_sequence_length_divisible_by(qwen2, datums, div, use_nemo_rl):
    out = collator(qwen2, use_nemo_rl, div=div, specs=[None])(datums[:3])
    longest = int(out["input_lengths"].max())
    width = out["input_ids"].shape[1]
    assert width % div == 0 and longest <= width < longest + div
    assert out["token_mask"].shape[1] == width == out["flat_messages"]["token_loss_mask"].shape[1]


def test_shard_by_batch_size_and_select(qwen2, datums, use_nemo_rl):
    out = collator(qwen2, use_nemo_rl, specs=[None])(datums[:8])
    if use_nemo_rl:  # upstream shards teacher_data itself, never the per-teacher list
        del out["per_teacher_ct_data"]
    assert out.size == 8
    # rows [A A B B C C D D] in chunks of 2 over 2 shards: shard s takes row s of every chunk
    shards = out.shard_by_batch_size(2, batch_size=2)
    assert [s["idx"] for s in shards] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    for s in shards:
        assert torch.equal(s["input_ids"], out["input_ids"][s["idx"]])
        assert s["length"].tolist() == [out["length"][i].item() for i in s["idx"]]
    assert [s["idx"] for s in out.shard_by_batch_size(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [s["idx"] for s in out.shard_by_batch_size(3, allow_uneven_shards=True)] == [
        [0, 1, 2], [3, 4, 5], [6, 7]]
    if not use_nemo_rl:
        with pytest.raises(ConfigError, match="allow_uneven_shards"):
            out.shard_by_batch_size(3)
        with pytest.raises(ConfigError, match="batch_size=3"):
            out.shard_by_batch_size(1, batch_size=3)
        assert out.slice(2, 4)["idx"] == [2, 3]
        assert shards[1]["per_teacher_ct_data"] == [None]  # per teacher, not per row: whole
        with pytest.raises(ConfigError, match="key 'odd' has 3 rows, the batch 8"):
            BatchedDict(out, odd=[1, 2, 3]).shard_by_batch_size(2)
    td = collator(qwen2, use_nemo_rl, specs=[spec(TEACHERS[1], 32)])(datums[:4])[
        "per_teacher_ct_data"][0]["teacher_data"]
    halves = td.shard_by_batch_size(2)
    assert [h["input_ids"].shape for h in halves] == [(2, 32), (2, 32)]
    assert torch.equal(torch.cat([h["input_ids"] for h in halves]), td["input_ids"])


def test_legacy_use_align_fast_warns_once_and_unknown_keys_fail(qwen2, datums, monkeypatch):
    monkeypatch.setattr(compat, "_warned", set())
    legacy = {**spec(TEACHERS[1], 64), "use_align_fast": True}
    with pytest.warns(DeprecationWarning, match="use_align_fast.*ignored"):
        coll = CrossTokenizerCollator(qwen2.pad_token_id, 8, [legacy, legacy])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CrossTokenizerCollator(qwen2.pad_token_id, 8, [legacy])  # once per process
    assert "use_align_fast" not in coll.teacher_ct_specs[0]
    plain = CrossTokenizerCollator(qwen2.pad_token_id, 8, [spec(TEACHERS[1], 64)] * 2)
    assert_batches_equal(dict(coll(datums[:2])), dict(plain(datums[:2])))
    with pytest.raises(ConfigError, match=r"unknown keys \['use_align_faster'\]"):
        CrossTokenizerCollator(0, 8, [{**spec(TEACHERS[1], 64), "use_align_faster": True}])


def test_bad_ids_name_the_sample_and_field(qwen2, datums):
    """Float ids were truncated and negative ones raised a bare OverflowError; now both raise a
    typed error naming the sample and the field."""
    coll = CrossTokenizerCollator(qwen2.pad_token_id, 8, [None])
    with pytest.raises(SampleTypeError, match=r"field 'input_ids'.*key=batch\[1\]") as e:
        coll([{"input_ids": [1, 2]}, {"input_ids": [3, 4.7]}])
    assert isinstance(e.value, TypeError) and isinstance(e.value, DecodeError)
    with pytest.raises(SampleTypeError, match=r"torch.float32"):
        coll([{"input_ids": torch.tensor([1.0, 2.0])}])
    with pytest.raises(SampleValueError, match=r">= 0, got -3.*field 'input_ids'.*batch\[0\]"):
        coll([{"input_ids": [5, -3]}])
    bad = [dict(d) for d in datums[:2]]
    bad[1]["message_log"] = [dict(m) for m in bad[1]["message_log"]]
    bad[1]["message_log"][1]["token_ids"] = bad[1]["message_log"][1]["token_ids"].float()
    with pytest.raises(TypeError, match=r"field 'token_ids'.*batch\[1\]\.message_log\[1\]"):
        coll(bad)
    bad[1]["message_log"][1]["token_ids"] = torch.tensor([-1])
    with pytest.raises(ValueError, match=r"field 'token_ids'.*batch\[1\]\.message_log\[1\]") as e:
        coll(bad)
    again = pickle.loads(pickle.dumps(e.value))  # crosses DataLoader worker boundaries intact
    assert type(again) is SampleValueError and str(again) == str(e.value)
    assert again.field == "token_ids" and again.key == "batch[1].message_log[1]"
    assert str(SampleValueError("rebuilt from a message")) == "rebuilt from a message"
    with pytest.raises(DecodeError, match=r"lacks \['idx'\].*field 'idx'.*batch\[0\]"):
        coll([{k: v for k, v in datums[0].items() if k != "idx"}])
    with pytest.raises(SampleTypeError, match=r"an integer, got 'x'.*field 'idx'.*batch\[0\]"):
        coll([{**datums[0], "idx": "x"}])
    with pytest.raises(SampleTypeError, match=r"dict or None.*field 'extra_env_info'"):
        coll([{**datums[0], "extra_env_info": "raw"}])
    with pytest.raises(DecodeError, match="mixes"):
        coll([datums[0], {"input_ids": [1]}])
    with pytest.raises(DecodeError, match="mixes"):
        coll([{"input_ids": [1]}, datums[0]])
    with pytest.raises(SampleValueError, match="token_loss_mask has shape"):
        coll([{**datums[0], "message_log": [{**datums[0]["message_log"][0],
                                             "token_loss_mask": [1]}]}])  # fmt: skip


def test_stateful_dataloader_workers_and_resume_on_datums(qwen2, pairs):
    from torchdata.stateful_dataloader import StatefulDataLoader

    items = [kd_datum(qwen2, p, f"{a} [{i}]", i) for i, (p, a) in enumerate(pairs)]
    items += [kd_datum(qwen2, a, p, len(items) + i) for i, (p, a) in enumerate(pairs)]
    coll = CrossTokenizerCollator(qwen2.pad_token_id, 8, [spec(TEACHERS[0], 64), None,
                                                          spec(TEACHERS[1], 64, exact=True)])  # fmt: skip
    ds = TextDataset(items)

    def loader():
        return StatefulDataLoader(ds, batch_size=3, shuffle=True, num_workers=2, collate_fn=coll,
                                  generator=torch.Generator().manual_seed(3))  # fmt: skip

    want = list(loader())
    assert len(want) == -(-len(items) // 3)
    seen = []
    for batch in want:  # a worker's batch equals collating the same DatumSpecs here
        assert set(batch.keys()) == RL_KEYS | TRAIN_KEYS
        seen += batch["idx"]
        assert_batches_equal(dict(batch), dict(coll([items[i] for i in batch["idx"]])))
    assert sorted(seen) == list(range(len(items)))
    dl = loader()
    it = iter(dl)
    head = [next(it) for _ in range(2)]
    state = dl.state_dict()
    del it, dl
    resumed = loader()
    resumed.load_state_dict(state)
    tail = list(resumed)
    assert len(head) + len(tail) == len(want)
    for a, b in zip(head + tail, want):
        assert_batches_equal(dict(a), dict(b))


def test_projection_sized_by_the_tokenizers(qwen2, deepseek, tmp_path):
    """A dense file's largest id + 1 is not the teacher's vocabulary (deepseek-v4: 129,280 ids)."""
    path = tmp_path / "top2.pt"
    ind = torch.full((len(qwen2), 2), -1, dtype=torch.int64)
    lik = torch.zeros((len(qwen2), 2))
    ind[:1000, 0], lik[:1000, 0] = torch.arange(1000), 1.0
    torch.save({"indices": ind, "likelihoods": lik}, path)
    coll = CrossTokenizerCollator(qwen2.pad_token_id, 8, [
        spec(TEACHERS[1], 32, projection_matrix_path=str(path), use_sparse_format=False)])
    proj = coll.projection(0)
    assert proj.shape == (len(qwen2), len(deepseek)) == (151851, 129280)
    assert proj.nnz == 1000


# -- properties of the pieces -------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_shard_by_batch_size_partitions_the_rows(chunks, batch_size, shards, uneven):
    """Every row lands in exactly one shard; shard s holds part s of every chunk, in order."""
    if not uneven and batch_size % shards:
        batch_size *= shards
    n = chunks * batch_size
    b = BatchedDict(idx=list(range(n)), x=torch.arange(n * 2).reshape(n, 2),
                    per_teacher_ct_data=["t0"])  # fmt: skip
    out = b.shard_by_batch_size(shards, batch_size=batch_size, allow_uneven_shards=uneven)
    assert len(out) == shards
    assert sorted(i for s in out for i in s["idx"]) == list(range(n))
    part = -(-batch_size // shards) if uneven else batch_size // shards
    for s_i, s in enumerate(out):
        assert s["idx"] == [c * batch_size + r for c in range(chunks)
                            for r in range(s_i * part, min((s_i + 1) * part, batch_size))]  # fmt: skip
        assert torch.equal(s["x"], b["x"][s["idx"]]) and s["per_teacher_ct_data"] == ["t0"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2**63 - 1), max_size=20), st.integers(0, 19),
       st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), -1))
def test_ids_are_checked_never_cast(ids, at, bad_float, negative):
    assert int_ids(ids, "batch[0]", "input_ids").tolist() == ids
    assert int_ids(torch.tensor(ids, dtype=torch.int64), "k", "f").tolist() == ids
    empty = int_ids(torch.tensor([]), "k", "f")  # float32 when empty: no value is cut
    assert empty.dtype == torch.int64 and empty.shape == (0,)
    pos = min(at, len(ids))
    with pytest.raises(SampleTypeError, match="field 'input_ids'"):
        int_ids(ids[:pos] + [bad_float] + ids[pos:], "batch[0]", "input_ids")
    with pytest.raises(SampleValueError, match=f">= 0, got {negative}"):
        int_ids(ids[:pos] + [negative] + ids[pos:], "batch[0]", "input_ids")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant", "tool"]),
                                   st.integers(0, 5)), min_size=1, max_size=4),
                min_size=1, max_size=4), st.integers(1, 9))
def test_flatten_masks_follow_roles(logs, div):
    """token_mask is 1 exactly on assistant tokens; rows padded to a multiple of div."""
    datums = [{"message_log": [{"role": r, "content": "", "token_ids": torch.arange(n) + 1}
                               for r, n in log],
               "length": sum(n for _, n in log), "extra_env_info": None, "loss_multiplier": 1.0,
               "idx": i} for i, log in enumerate(logs)]  # fmt: skip
    prepared, texts = prepare_datums(datums)
    assert texts is None
    flat, lengths = flatten([d["message_log"] for d in prepared], 7, div)
    width = flat["token_ids"].shape[1]
    assert width % div == 0 and width - div < max(1, int(lengths.max())) <= max(width, 1)
    for b, log in enumerate(logs):
        want = [int(r == "assistant") for r, n in log for _ in range(n)]
        assert lengths[b] == len(want)
        assert flat["token_loss_mask"][b].tolist() == want + [0] * (width - len(want))
        assert (flat["token_ids"][b, len(want):] == 7).all()
        assert flat["role"][b] == [r for r, _ in log]


def test_extra_message_tensors_are_flattened_like_upstream():
    """A tensor key beyond token_ids/token_loss_mask is concatenated and padded with 0; a sample
    without it gets an empty (all-padding) row, as upstream's flattening does."""
    logs = [[{"role": "user", "content": "a", "token_ids": torch.tensor([1, 2]),
              "logprobs": torch.tensor([0.5, 0.25])}],
            [{"role": "assistant", "content": "b", "token_ids": torch.tensor([3])}]]  # fmt: skip
    datums = [{"message_log": log, "length": 1, "extra_env_info": None, "loss_multiplier": 1.0,
               "idx": i} for i, log in enumerate(logs)]  # fmt: skip
    flat, lengths = flatten([d["message_log"] for d in prepare_datums(datums)[0]], 9, 4)
    assert flat["logprobs"].tolist() == [[0.5, 0.25, 0, 0], [0, 0, 0, 0]]
    assert flat["token_ids"].tolist() == [[1, 2, 9, 9], [3, 9, 9, 9]]
    assert flat["token_loss_mask"].tolist() == [[0, 0, 0, 0], [1, 0, 0, 0]]
    assert lengths.dtype == torch.int32 and lengths.tolist() == [2, 1]
