"""compat.nemo_rl: the reference's keys, shapes and chunk filtering, raw_text vs decode, and the
collator as ``collate_fn`` of a StatefulDataLoader with workers (incl. state_dict/resume)."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from xtok_stream.align.chunks import chunk_coo
from xtok_stream.compat.nemo_rl import CrossTokenizerCollator, TeacherCTSpec, build_chunk_coo
from xtok_stream.demo_corpus import iter_documents
from xtok_stream.errors import ConfigError, DecodeError

STUDENT = "pkg:qwen2"
TEACHERS = ("pkg:mistral-v3", "pkg:deepseek-v4")
DIV = 8


def spec(teacher: str, max_teacher_len: int, exact: bool = False, **kw) -> TeacherCTSpec:
    """A full spec as a reference config would carry it."""
    out = TeacherCTSpec(
        teacher_tokenizer_name=teacher, student_tokenizer_name=STUDENT, projection_matrix_path="",
        use_sparse_format=True, learnable=False, max_comb_len=4, projection_matrix_multiplier=1.0,
        project_teacher_to_student=False, max_teacher_len=max_teacher_len, dp_chunk_size=128,
        exact_token_match_only=exact,
    )  # fmt: skip
    out.update(kw)
    return out


def reference_coo(pairs, student_seq_len, teacher_seq_len, exact_match_only):
    """The reference's ``_build_chunk_coo`` loop, restated plainly as the oracle."""
    s_rows, t_rows, cid = [], [], 0
    for p in pairs:
        s0, s1, t0, t1 = p[2], p[3], p[4], p[5]
        if exact_match_only and (s1 - s0 != 1 or t1 - t0 != 1):
            continue
        if s0 == -1 or t0 == -1 or s1 > student_seq_len or t1 > teacher_seq_len:
            continue
        s_rows += [(pos, cid) for pos in range(s0, s1)]
        t_rows += [(pos, cid) for pos in range(t0, t1)]
        cid += 1
    as_t = lambda r: torch.tensor(r, dtype=torch.int64) if r else torch.empty((0, 2), dtype=torch.int64)
    return as_t(s_rows), as_t(t_rows), cid


@pytest.fixture(scope="module")
def texts():
    docs = [d["text"] for d in iter_documents(limit=14)]
    # short, multilingual, code, an empty one, and long ones that teachers truncate
    return ["Hello world!", ""] + [d[:600] for d in docs]


@pytest.fixture(scope="module")
def samples(qwen2, texts):
    return [{"input_ids": qwen2(t)["input_ids"], "raw_text": t} for t in texts]


@pytest.fixture(scope="module")
def collator(qwen2):
    return CrossTokenizerCollator(
        qwen2.pad_token_id, DIV, [spec(TEACHERS[0], 96), None, spec(TEACHERS[1], 256)]
    )


@pytest.fixture(scope="module")
def out(collator, samples):
    return collator(samples)


def test_keys_shapes_and_dtypes(out, samples, qwen2):
    b = len(samples)
    lengths = [len(s["input_ids"]) for s in samples]
    width = out["input_ids"].shape[1]
    assert set(out) >= {"input_ids", "input_lengths", "token_mask", "sample_mask",
                        "per_teacher_ct_data"}  # fmt: skip
    assert width % DIV == 0 and max(lengths) <= width < max(lengths) + DIV
    assert out["input_ids"].shape == (b, width) and out["input_ids"].dtype == torch.int64
    assert out["input_lengths"].tolist() == lengths and out["input_lengths"].dtype == torch.int32
    assert out["token_mask"].shape == (b, width)
    assert out["sample_mask"].shape == (b,) and out["sample_mask"].dtype == torch.float32
    for i, s in enumerate(samples):
        n = lengths[i]
        assert out["input_ids"][i, :n].tolist() == s["input_ids"]
        assert (out["input_ids"][i, n:] == qwen2.pad_token_id).all()
        assert out["token_mask"][i].tolist() == [1] * n + [0] * (width - n)

    per = out["per_teacher_ct_data"]
    assert len(per) == 3 and per[1] is None
    for entry, max_len in ((per[0], 96), (per[2], 256)):
        assert set(entry) == {"teacher_input_ids", "aligned_pairs", "teacher_data",
                              "student_chunk_coo", "teacher_chunk_coo", "num_chunks"}  # fmt: skip
        assert entry["teacher_input_ids"].shape == (b, max_len)
        assert entry["teacher_input_ids"].dtype == torch.int64
        td = entry["teacher_data"]
        assert set(td) == {"input_ids", "input_lengths", "token_mask", "sample_mask"}
        assert td["input_ids"] is entry["teacher_input_ids"]
        assert td["token_mask"].dtype == torch.float32 and td["token_mask"].shape == (b, max_len)
        assert td["input_lengths"].tolist() == td["token_mask"].sum(1).long().tolist()
        assert torch.equal(td["sample_mask"], out["sample_mask"])
        assert len(entry["aligned_pairs"]) == b and len(entry["num_chunks"]) == b
        assert all(isinstance(n, int) for n in entry["num_chunks"])
        for pairs in entry["aligned_pairs"]:
            assert isinstance(pairs, list)
            for p in pairs:
                assert isinstance(p, tuple) and len(p) == 7 and isinstance(p[6], bool)
                assert isinstance(p[0], list) and isinstance(p[1], list)
                assert len(p[0]) == p[3] - p[2] and len(p[1]) == p[5] - p[4]
        for key in ("student_chunk_coo", "teacher_chunk_coo"):
            assert len(entry[key]) == b
            for coo in entry[key]:
                assert coo.dtype == torch.int64 and coo.ndim == 2 and coo.shape[1] == 2


def test_coo_matches_reference_loop_and_pads_are_never_aligned(out, samples):
    width = out["input_ids"].shape[1]
    for entry in (out["per_teacher_ct_data"][0], out["per_teacher_ct_data"][2]):
        t_len = entry["teacher_input_ids"].shape[1]
        att = entry["teacher_data"]["token_mask"]
        for b, pairs in enumerate(entry["aligned_pairs"]):
            s, t, n = reference_coo(pairs, width, t_len, False)
            assert torch.equal(entry["student_chunk_coo"][b], s)
            assert torch.equal(entry["teacher_chunk_coo"][b], t)
            assert entry["num_chunks"][b] == n
            spans = np.array([p[2:6] for p in pairs], np.int64).reshape(-1, 4)
            sc, tc, n2 = chunk_coo(spans[:, :2], spans[:, 2:], width, t_len, False)
            assert n2 == n and np.array_equal(sc, s.numpy()) and np.array_equal(tc, t.numpy())
            # no chunk touches a pad, on either side
            n_s = len(samples[b]["input_ids"])
            assert all(p[3] <= n_s for p in pairs)
            assert all(bool(att[b, p[4] : p[5]].all()) for p in pairs)


def test_exact_chunks_have_equal_text(out, samples, qwen2, mistral, deepseek):
    def prefix_texts(tok, ids):
        return [tok.decode(ids[:k], skip_special_tokens=True, clean_up_tokenization_spaces=False)
                for k in range(len(ids) + 1)]  # fmt: skip

    total_checked = total_exact = 0
    data = out["per_teacher_ct_data"]
    for entry, tok in ((data[0], mistral), (data[2], deepseek)):
        for b, pairs in enumerate(entry["aligned_pairs"]):
            s_ids = samples[b]["input_ids"]
            t_ids = entry["teacher_input_ids"][b].tolist()
            sp, tp = prefix_texts(qwen2, s_ids), prefix_texts(tok, t_ids)
            n_exact = n_checked = 0
            for s_tok, t_tok, s0, s1, t0, t1, ok in pairs:
                assert s_tok == qwen2.convert_ids_to_tokens(s_ids[s0:s1])
                assert t_tok == tok.convert_ids_to_tokens(t_ids[t0:t1])
                if ok:
                    n_exact += 1
                    s_text, t_text = sp[s1][len(sp[s0]) :], tp[t1][len(tp[t0]) :]
                    if "\ufffd" in sp[s1] + tp[t1]:
                        continue  # the chunk ends inside a character: its prefixes don't decode
                    n_checked += 1
                    assert s_text == t_text, (b, s0, t0)
            assert n_exact >= 0.8 * len(pairs)
            total_checked += n_checked
            total_exact += n_exact
    assert total_checked >= 0.8 * total_exact


def test_exact_token_match_only(qwen2, samples):
    coll = CrossTokenizerCollator(qwen2.pad_token_id, DIV, [spec(TEACHERS[1], 256, exact=True)])
    entry = coll(samples)["per_teacher_ct_data"][0]
    for b, pairs in enumerate(entry["aligned_pairs"]):
        one_to_one = [p for p in pairs if p[3] - p[2] == 1 and p[5] - p[4] == 1]
        assert entry["num_chunks"][b] == len(one_to_one)
        assert len(entry["student_chunk_coo"][b]) == len(one_to_one)
        assert entry["student_chunk_coo"][b][:, 0].tolist() == [p[2] for p in one_to_one]
        assert entry["teacher_chunk_coo"][b][:, 0].tolist() == [p[4] for p in one_to_one]
        assert entry["teacher_chunk_coo"][b][:, 1].tolist() == list(range(len(one_to_one)))
    assert any(len(p) > n for p, n in zip(entry["aligned_pairs"], entry["num_chunks"]))


def test_truncation_by_max_teacher_len(qwen2, samples):
    """A short max_teacher_len cuts the teacher: no chunk reaches past its real tokens and the
    student tail beyond the teacher's text is in no chunk."""
    coll = CrossTokenizerCollator(qwen2.pad_token_id, DIV,
                                  [spec(TEACHERS[0], 24), spec(TEACHERS[1], 24)])
    out = coll(samples)
    width = out["input_ids"].shape[1]
    for entry in out["per_teacher_ct_data"]:
        lengths = entry["teacher_data"]["input_lengths"]
        assert entry["teacher_input_ids"].shape == (len(samples), 24)
        assert int(lengths.max()) == 24
        for b, pairs in enumerate(entry["aligned_pairs"]):
            att = entry["teacher_data"]["token_mask"][b]
            real = att.nonzero().flatten().tolist()
            assert all(p[5] <= 24 and p[4] >= (real[0] if real else 0) for p in pairs)
            s, t, n = reference_coo(pairs, width, 24, False)
            assert torch.equal(entry["teacher_chunk_coo"][b], t) and entry["num_chunks"][b] == n
            if int(lengths[b]) == 24 and len(samples[b]["input_ids"]) > 40:
                covered = int(entry["student_chunk_coo"][b][:, 0].max()) + 1
                assert covered < len(samples[b]["input_ids"])  # the student tail is unaligned


def test_build_chunk_coo_matches_reference_on_synthetic_pairs():
    """Sentinels, spans past either padded length, non-1:1 chunks: same rows as the loop."""
    rng = random.Random(0)
    for _ in range(300):
        pairs = []
        for _ in range(rng.randrange(0, 12)):
            s0, t0 = rng.choice([-1, rng.randrange(0, 20)]), rng.choice([-1, rng.randrange(0, 20)])
            s1 = (s0 if s0 >= 0 else 0) + rng.randrange(1, 4)
            t1 = (t0 if t0 >= 0 else 0) + rng.randrange(1, 4)
            pairs.append(([], [], s0, s1, t0, t1, rng.random() < 0.5))
        s_len, t_len, exact = rng.randrange(1, 24), rng.randrange(1, 24), rng.random() < 0.5
        got = build_chunk_coo(pairs, s_len, t_len, exact)
        want = reference_coo(pairs, s_len, t_len, exact)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]) and got[2] == want[2]
    s, t, n = build_chunk_coo([], 8, 8)
    assert s.shape == (0, 2) and t.shape == (0, 2) and s.dtype == torch.int64 and n == 0


def test_raw_text_vs_decode_fallback(qwen2, deepseek, texts):
    coll = CrossTokenizerCollator(0, DIV, [spec(TEACHERS[1], 64)])  # pad id 0 is "!" in qwen2
    ids = [qwen2(t)["input_ids"] for t in texts[:4]]
    # raw_text on every sample: the teacher reads it, even where it differs from the ids' text
    other = ["Completely different text." for _ in ids]
    got = coll([{"input_ids": i, "raw_text": r} for i, r in zip(ids, other)])
    t_ids = got["per_teacher_ct_data"][0]["teacher_input_ids"]
    assert t_ids[0, : len(deepseek(other[0])["input_ids"])].tolist() == deepseek(other[0])["input_ids"]
    # one sample without raw_text: every sample is decoded from its (unpadded) student ids
    mixed = [{"input_ids": i, "raw_text": r} for i, r in zip(ids, other)]
    del mixed[1]["raw_text"]
    got = coll(mixed)["per_teacher_ct_data"][0]
    for b in range(len(texts[:4])):
        want = deepseek(qwen2.decode(ids[b], skip_special_tokens=True))["input_ids"][:64]
        assert got["teacher_input_ids"][b, : len(want)].tolist() == want
        assert int(got["teacher_data"]["input_lengths"][b]) == len(want)  # no "!" pads decoded
    # decode fallback equals raw_text when the text round-trips
    a = coll([{"input_ids": i} for i in ids])["per_teacher_ct_data"][0]
    b_ = coll([{"input_ids": i, "raw_text": t} for i, t in zip(ids, texts[:4])])["per_teacher_ct_data"][0]
    assert torch.equal(a["teacher_input_ids"], b_["teacher_input_ids"])
    assert a["aligned_pairs"] == b_["aligned_pairs"] and a["num_chunks"] == b_["num_chunks"]


def test_sample_fields_and_errors(qwen2):
    coll = CrossTokenizerCollator(qwen2.pad_token_id, 4, [None])
    got = coll([{"input_ids": torch.tensor([1, 2, 3]), "loss_multiplier": 0.0,
                 "token_mask": [0, 1, 1]}, {"input_ids": [5], "sample_mask": 0.5}])  # fmt: skip
    assert got["input_ids"].shape == (2, 4) and got["per_teacher_ct_data"] == [None]
    assert got["sample_mask"].tolist() == [0.0, 0.5]
    assert got["token_mask"].tolist() == [[0, 1, 1, 0], [1, 0, 0, 0]]
    with pytest.raises(DecodeError, match="input_ids"):
        coll([{"raw_text": "x"}])
    with pytest.raises(DecodeError, match="token_mask"):
        coll([{"input_ids": [1, 2], "token_mask": [1]}])
    with pytest.raises(ConfigError, match="unknown keys"):
        CrossTokenizerCollator(0, 1, [{**spec(TEACHERS[1], 8), "max_teacher_length": 8}])
    with pytest.raises(ConfigError, match="max_teacher_len"):
        CrossTokenizerCollator(0, 1, [{"teacher_tokenizer_name": "x", "student_tokenizer_name": "y"}])
    with pytest.raises(ConfigError, match="fallback_student_tokenizer_name"):
        CrossTokenizerCollator(0, 1, [None])._get_student_tokenizer()


def test_pickles_only_primitives(collator, samples):
    collator(samples[:1])  # initialised: tokenizers and aligners must not travel
    blob = pickle.dumps(collator)
    assert len(blob) < 4096
    clone = pickle.loads(blob)
    assert clone._aligners is None
    a, b = collator(samples[:3]), clone(samples[:3])
    assert_batches_equal(a, b)


# -- as collate_fn of a StatefulDataLoader with workers ---------------------------------------
class TextDataset(torch.utils.data.Dataset):
    """Map-style dataset of sample dicts."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return dict(self.items[i])


def assert_batches_equal(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_batches_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_batches_equal(x, y)
    else:
        assert a == b


def test_stateful_dataloader_workers_and_resume(qwen2, texts):
    from torchdata.stateful_dataloader import StatefulDataLoader

    unique = [f"{t} [{i}]" for i, t in enumerate(texts)]  # a few stdlib headers repeat
    items = [{"input_ids": qwen2(t)["input_ids"], "raw_text": t} for t in unique]
    # copies without raw_text: batches holding one take the decode fallback
    items += [{"input_ids": qwen2(t + " (copy)")["input_ids"]} for t in unique]
    index_of = {tuple(it["input_ids"]): i for i, it in enumerate(items)}
    assert len(index_of) == len(items)
    ds = TextDataset(items)
    coll = CrossTokenizerCollator(
        qwen2.pad_token_id, DIV, [spec(TEACHERS[0], 64), None, spec(TEACHERS[1], 64, exact=True)],
        fallback_student_tokenizer_name=STUDENT,
    )

    def loader(workers, **kw):
        return StatefulDataLoader(ds, batch_size=3, shuffle=True, num_workers=workers,
                                  collate_fn=coll, generator=torch.Generator().manual_seed(7),
                                  **kw)  # fmt: skip

    want = list(loader(2))
    assert len(want) == -(-len(ds) // 3)
    seen = []
    for batch in want:  # each worker batch equals collating the same samples in this process
        idx = [index_of[tuple(r[:n].tolist())]
               for r, n in zip(batch["input_ids"], batch["input_lengths"])]  # fmt: skip
        seen += idx
        assert_batches_equal(batch, coll([items[i] for i in idx]))
    assert sorted(seen) == list(range(len(items)))
    for a, b in zip(want, loader(2)):  # same seed, same epoch
        assert_batches_equal(a, b)

    dl = loader(2)
    it = iter(dl)
    head = [next(it) for _ in range(3)]
    state = dl.state_dict()
    del it, dl
    resumed = loader(2)
    resumed.load_state_dict(state)
    tail = list(resumed)
    assert len(head) + len(tail) == len(want)
    for a, b in zip(head + tail, want):
        assert_batches_equal(a, b)


def test_spawned_workers_rebuild_from_primitives(qwen2, texts):
    """Under spawn the collator travels pickled (only primitives) and builds lazily per worker."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    items = [{"input_ids": qwen2(t)["input_ids"], "raw_text": t} for t in texts[:6]]
    coll = CrossTokenizerCollator(qwen2.pad_token_id, DIV, [spec(TEACHERS[1], 64)])
    want = [coll(items[i : i + 3]) for i in (0, 3)]
    dl = StatefulDataLoader(TextDataset(items), batch_size=3, num_workers=2, collate_fn=coll,
                            multiprocessing_context="spawn")  # fmt: skip
    got = list(dl)
    assert len(got) == 2
    for a, b in zip(want, got):
        assert_batches_equal(a, b)


def test_projection_is_loaded_on_demand_only(qwen2, samples, tmp_path):
    pytest.importorskip("xtok_stream.projection")
    path = tmp_path / "proj.pt"
    torch.save({(0, 1): 2.0, (5, 3): 4.0}, path)  # the reference's sparse format
    coll = CrossTokenizerCollator(qwen2.pad_token_id, DIV, [
        spec(TEACHERS[1], 32),
        spec(TEACHERS[1], 32, projection_matrix_path=str(path), projection_matrix_multiplier=2.0),
        spec(TEACHERS[1], 32, projection_matrix_path=str(path), project_teacher_to_student=True),
    ])  # fmt: skip
    coll(samples[:2])
    assert coll._projections == {}  # the batch never needs it
    assert coll.projection(0) is None
    fwd, rev = coll.projection(1), coll.projection(2)
    assert coll.projection(1) is fwd  # cached per process
    assert sorted(zip(fwd.rows.tolist(), fwd.cols.tolist(), fwd.weights.tolist())) == [
        (0, 1, 1.0), (5, 3, 2.0)]
    assert sorted(zip(rev.rows.tolist(), rev.cols.tolist(), rev.weights.tolist())) == [
        (1, 0, 2.0), (3, 5, 4.0)]
    assert pickle.loads(pickle.dumps(coll))._projections == {}


@pytest.mark.parametrize("teacher,max_len", [(TEACHERS[0], 96), (TEACHERS[1], 256), (TEACHERS[0], 24)])
def test_teacher_encoding_equals_the_references_call(texts, qwen2, teacher, max_len):
    """teacher_input_ids / input_lengths / token_mask are what the reference's
    ``tokenizer(texts, max_length=..., padding="max_length", truncation=True)`` gives, with
    ``pad_token = eos_token`` set on a tokenizer without one (mistral-v3, which pads on the left)."""
    import copy

    from xtok_stream.tokenizers import load_tokenizer

    tok = copy.deepcopy(load_tokenizer(teacher))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = tok(texts, max_length=max_len, padding="max_length", truncation=True, return_tensors="pt")
    coll = CrossTokenizerCollator(qwen2.pad_token_id, DIV, [spec(teacher, max_len)])
    got = coll([{"input_ids": qwen2(t)["input_ids"], "raw_text": t} for t in texts])
    entry = got["per_teacher_ct_data"][0]
    assert torch.equal(entry["teacher_input_ids"], enc["input_ids"])
    assert torch.equal(entry["teacher_data"]["input_lengths"], enc["attention_mask"].sum(dim=1))
    assert torch.equal(entry["teacher_data"]["token_mask"], (enc["attention_mask"] > 0).float())
    if teacher == TEACHERS[0]:
        assert load_tokenizer(teacher).pad_token is None  # the shared cached tokenizer is untouched


def test_raw_text_aligns_in_text_space(qwen2, texts):
    """With raw_text the collator aligns by original-text positions (Aligner.align_text): a
    WordPiece-uncased teacher (lossy byte table: lower-casing, no space tokens) gets its exact
    chunks back; decoded rows (no raw_text) keep the ids-only path, which cannot prove them."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "align"))
    from families import held_out_path

    wp = str(held_out_path("wordpiece-uncased"))
    coll = CrossTokenizerCollator(qwen2.pad_token_id, DIV, [spec(wp, 512)],
                                  fallback_student_tokenizer_name=STUDENT)
    rows = [t for t in texts if t][:6]
    with_text = [{"input_ids": qwen2(t)["input_ids"], "raw_text": t} for t in rows]
    without = [{"input_ids": s["input_ids"]} for s in with_text]

    def share(batch):
        pairs = [p for row in batch["per_teacher_ct_data"][0]["aligned_pairs"] for p in row]
        return sum(p[6] for p in pairs) / len(pairs)

    known, decoded = share(coll(with_text)), share(coll(without))
    assert known > 0.95 and known > decoded + 0.15, (known, decoded)
