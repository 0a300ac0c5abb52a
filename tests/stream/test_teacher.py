"""Teacher stages: tokens, chunk maps, COO and metrics agree with the aligner and the bytes."""

import numpy as np
import pytest

from xtok_stream.align import Aligner, byte_table
from xtok_stream.align.chunks import chunk_coo
from xtok_stream.config import load_config
from xtok_stream.loader import Loader
from xtok_stream.pipeline import build_lane
from xtok_stream.testing import check_resume

TEACHERS = [{"tokenizer": "pkg:mistral-v3", "max_len": 300},
            {"tokenizer": "pkg:deepseek-v4", "exact_token_match_only": True},
            {"tokenizer": "pkg:qwen2", "name": "self"}]


def config(shards, **over):
    tree = {"source": {"urls": shards}, "student": {"tokenizer": "pkg:qwen2", "seq_len": 250},
            "batch_size": 3, "num_lanes": 4, "seed": 2, "pad_to_multiple_of": 8,
            "teachers": TEACHERS}
    tree.update(over)
    return load_config(tree)


@pytest.fixture(scope="module")
def batches(local_shards):
    shards, _ = local_shards
    return list(Loader(config(shards)))


def test_teacher_tokens_follow_the_pieces(batches, local_shards, mistral, deepseek):
    _, texts = local_shards
    for batch in batches[:4]:
        for name, tok in (("mistral-v3", mistral), ("deepseek-v4", deepseek)):
            t = batch["teachers"][name]
            for b, row in enumerate(batch["pieces"]):
                if not row:
                    continue
                expected = expected_ids(row, texts, tok, batches)
                n = int(t["input_lengths"][b])
                limit = 300 if name == "mistral-v3" else 10**9
                assert t["input_ids"][b, :n].tolist() == expected[:limit]
                assert t["attention_mask"][b].sum() == n
                assert (t["input_ids"][b, n:] == (tok.pad_token_id if tok.pad_token_id is not None
                                                  else tok.eos_token_id)).all()


def _eos_moved(batches, key, c1):
    """Did the document's EOS go to the next row alone (an empty piece ``(key, c1, c1)``)?"""
    return any(p[0] == key and p[1] == c1 and p[2] == c1 for b in batches for r in b["pieces"]
               for p in r)


def expected_ids(row, texts, tok, batches, bos=None):
    """A teacher's ids for a row: each piece tokenized alone, the teacher's BOS before a
    document's first piece (if it uses one), its EOS after the document's end."""
    out = []
    for key, c0, c1 in row:
        end = len(texts[key])
        if c0 == c1 == end and end > 0:  # only the EOS of a document that ended in the last row
            out.append(tok.eos_token_id)
            continue
        if bos is not None and c0 == 0:
            out.append(bos)
        out += tok.encode(texts[key][c0:c1], add_special_tokens=False)
        if c1 == end and not _eos_moved(batches, key, c1):
            out.append(tok.eos_token_id)
    return out


def test_chunk_maps_agree_with_the_aligner_and_bytes(batches, qwen2, mistral, deepseek):
    st = byte_table(qwen2)
    for name, tok in (("mistral-v3", mistral), ("deepseek-v4", deepseek)):
        aligner = Aligner(qwen2, tok)
        tt = byte_table(tok)
        for batch in batches[:5]:
            t = batch["teachers"][name]
            for b in range(batch["input_ids"].shape[0]):
                ns, nt = int(batch["input_lengths"][b]), int(t["input_lengths"][b])
                if ns == 0:
                    assert t["num_chunks"][b] == 0 and (t["student_chunk_id"][b] == -1).all()
                    continue
                s_ids = batch["input_ids"][b, :ns].numpy()
                t_ids = t["input_ids"][b, :nt].numpy()
                a = aligner.align(s_ids, t_ids)
                assert t["num_chunks"][b] == len(a)
                assert np.array_equal(t["student_chunk_id"][b, :ns].numpy(), a.student_chunk_ids())
                assert np.array_equal(t["teacher_chunk_id"][b, :nt].numpy(), a.teacher_chunk_ids())
                assert (t["student_chunk_id"][b, ns:] == -1).all()
                assert np.array_equal(t["chunk_exact"][b, :len(a)].numpy(), a.exact)
                for (s0, s1), (t0, t1), ex in zip(a.student_spans, a.teacher_spans, a.exact):
                    if ex:
                        assert (st.ids_bytes(s_ids[s0:s1], skip=a.student_skip[s0:s1])
                                == tt.ids_bytes(t_ids[t0:t1], skip=a.teacher_skip[t0:t1]))
                spec = next(x for x in TEACHERS if x["tokenizer"] == f"pkg:{name}")
                sc, tc, n = chunk_coo(a.student_spans, a.teacher_spans, 256,
                                      t["input_ids"].shape[1], spec.get("exact_token_match_only", False))
                assert t["student_chunk_coo"][b].tolist() == sc.tolist()
                assert t["teacher_chunk_coo"][b].tolist() == tc.tolist()


def test_exact_token_match_only_keeps_1to1_chunks(batches, qwen2, deepseek):
    """The COO keeps exactly the chunks with one token on each side, renumbered from 0."""
    aligner = Aligner(qwen2, deepseek)
    kept_total = dropped_total = 0
    for batch in batches[:3]:
        t = batch["teachers"]["deepseek-v4"]
        for b in range(batch["input_ids"].shape[0]):
            ns, nt = int(batch["input_lengths"][b]), int(t["input_lengths"][b])
            if ns == 0:
                continue
            a = aligner.align(batch["input_ids"][b, :ns].numpy(), t["input_ids"][b, :nt].numpy())
            one = ((a.student_spans[:, 1] - a.student_spans[:, 0]) == 1) & (
                (a.teacher_spans[:, 1] - a.teacher_spans[:, 0]) == 1)
            want_s = [[int(s0), i] for i, (s0, _) in enumerate(a.student_spans[one])]
            want_t = [[int(t0), i] for i, (t0, _) in enumerate(a.teacher_spans[one])]
            assert t["student_chunk_coo"][b].tolist() == want_s
            assert t["teacher_chunk_coo"][b].tolist() == want_t
            kept_total += int(one.sum())
            dropped_total += int((~one).sum())
    assert kept_total > 100 and dropped_total > 10  # both cases really occur


def test_max_len_truncates_and_the_tail_is_unaligned(batches):
    t = batches[0]["teachers"]["mistral-v3"]
    assert t["input_ids"].shape[1] == 304  # max_len 300 rounded up to the multiple of 8
    assert (t["input_lengths"] <= 300).all()
    assert (t["teacher_chunk_id"][:, 300:] == -1).all()


def test_identity_teacher_is_one_to_one(batches):
    for batch in batches[:3]:
        t = batch["teachers"]["self"]
        for b in range(3):
            n = int(batch["input_lengths"][b])
            assert t["input_ids"][b, :n].tolist() == batch["input_ids"][b, :n].tolist()
            assert t["student_chunk_id"][b, :n].tolist() == list(range(n))
            assert bool(t["chunk_exact"][b, :n].all())
        assert batch["teachers"]["self"]["metrics"]["exact_share"] == 1.0


def test_metrics_ride_along(batches):
    m = batches[0]["teachers"]["mistral-v3"]["metrics"]
    assert m["chunks"] > 0 and 0.9 < m["exact_share"] <= 1.0
    assert m["student_tokens_per_chunk"] >= 1.0 and m["teacher_tokens_per_chunk"] >= 1.0


def test_lane_with_teachers_resumes_at_every_step(local_shards):
    shards, _ = local_shards
    cfg = config(shards[:3], epochs=1, num_lanes=1)
    check_resume(lambda: build_lane(cfg, shards[:3], 0), every=2)


def test_unknown_teacher_key_is_named(local_shards):
    from xtok_stream.errors import ConfigError

    with pytest.raises(ConfigError, match="teachers.0.max_teacher_length"):
        config(["x"], teachers=[{"tokenizer": "pkg:mistral-v3", "max_teacher_length": 3}])


@pytest.fixture(scope="module")
def bos_teacher(tmp_path_factory, deepseek):
    """deepseek-v4 with a post-processor that puts its BOS before every encode: a teacher whose
    own convention is a BOS per document (none of the packaged tokenizers adds one)."""
    import copy

    from tokenizers.processors import TemplateProcessing

    tok = copy.deepcopy(deepseek)
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)])
    out = tmp_path_factory.mktemp("bos-teacher")
    tok.save_pretrained(str(out))
    return str(out), tok.bos_token_id


def test_teacher_bos_once_per_document_start(local_shards, bos_teacher, deepseek):
    shards, texts = local_shards
    path, bos = bos_teacher
    cfg = config(shards, teachers=[{"tokenizer": path, "name": "bos"}])
    batches = list(Loader(cfg))
    starts = continuations = 0
    for batch in batches:
        t = batch["teachers"]["bos"]
        for b, row in enumerate(batch["pieces"]):
            expected = expected_ids(row, texts, deepseek, batches, bos=bos)
            starts += sum(1 for _, c0, _c1 in row if c0 == 0)
            continuations += sum(1 for _, c0, _c1 in row if c0 > 0)
            n = int(t["input_lengths"][b])
            assert t["input_ids"][b, :n].tolist() == expected
    assert starts > 10 and continuations > 10
    # the BOS is a special token on the teacher side only: it stays out of every chunk
    t = batches[0]["teachers"]["bos"]
    assert (t["teacher_chunk_id"][t["input_ids"] == bos] == -1).all()
