"""Tokenized eval views: the student and two teachers on the same prompt, aligned, with every
exact chunk byte-verified through the byte tables; the torch map-style dataset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch.utils.data

from xtok_stream.config import PipelineConfig
from xtok_stream.errors import ConfigError
from xtok_stream.evals import (
    EvalDataset,
    EvalTokenizer,
    humaneval_plus,
    mbpp_plus,
    mmlu,
    tokenize_record,
)

from .test_code import HUMANEVAL

TEACHERS = ["pkg:mistral-v3", "pkg:deepseek-v4"]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from . import conftest as data

    tmp = tmp_path_factory.mktemp("evals")
    qs = data.write_simple_evals_csv(tmp / "mmlu.csv")
    dev = data.write_cais_csv(tmp / "dev.csv", data.DEV)
    import gzip
    import json

    mb = tmp / "MbppPlus.jsonl.gz"
    with gzip.open(mb, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in data.MBPP_EVALPLUS)
    return (humaneval_plus(str(HUMANEVAL), limit=6) + mbpp_plus(str(mb))
            + mmlu(str(qs), few_shot_path=str(dev), num_few_shot=1))


def check_view(view, text: str) -> None:
    aligners = EvalTokenizer("pkg:qwen2", TEACHERS).aligners
    st = aligners[0].student_table
    assert st.ids_bytes(view.student_ids) == text.encode()  # qwen2: no dummy prefix
    for k, (al, t_ids) in enumerate(zip(view.alignments, view.teacher_ids)):
        tt = aligners[k].teacher_table
        assert al.n_student == len(view.student_ids) and al.n_teacher == len(t_ids)
        assert al.exact.any() and al.metrics.verify_failures == 0
        n_exact = 0
        for (s0, s1), (t0, t1), ex in zip(al.student_spans.tolist(), al.teacher_spans.tolist(),
                                          al.exact.tolist()):
            if ex:
                sb = st.ids_bytes(view.student_ids[s0:s1], skip=al.student_skip[s0:s1])
                tb = tt.ids_bytes(t_ids[t0:t1], skip=al.teacher_skip[t0:t1])
                assert sb == tb and sb, (k, s0, s1, t0, t1)
                n_exact += 1
        assert n_exact == int(al.exact.sum())
        # the teacher's own bytes (dummy-prefix space dropped) are the prompt too
        assert tt.ids_bytes(t_ids, skip=al.teacher_skip) == text.encode()
    # joint chunks partition the student tokens and are exact only where every piece is
    j = view.joint
    assert j.student_spans[0, 0] == 0 and j.student_spans[-1, 1] == len(view.student_ids)
    assert np.all(j.student_spans[1:, 0] == j.student_spans[:-1, 1])
    for k, al in enumerate(view.alignments):
        tt = aligners[k].teacher_table
        for (s0, s1), (t0, t1), ex in zip(j.student_spans.tolist(), j.teacher_spans[k].tolist(),
                                          j.exact[k].tolist()):
            if ex:
                assert (st.ids_bytes(view.student_ids[s0:s1], skip=al.student_skip[s0:s1])
                        == tt.ids_bytes(view.teacher_ids[k][t0:t1], skip=al.teacher_skip[t0:t1]))


def test_two_teachers_every_exact_chunk_byte_verified(records, qwen2, mistral, deepseek):
    assert {r.benchmark for r in records} == {"humaneval_plus", "mbpp_plus", "mmlu"}
    for rec in records:
        view = tokenize_record(rec, student="pkg:qwen2", teachers=TEACHERS)
        assert view.task_id == rec.task_id and view.record is rec
        assert view.student_ids.tolist() == qwen2(rec.prompt, add_special_tokens=False)["input_ids"]
        assert view.teacher_ids[0].tolist() == mistral(rec.prompt, add_special_tokens=False)["input_ids"]
        assert view.teacher_ids[1].tolist() == deepseek(rec.prompt, add_special_tokens=False)["input_ids"]
        check_view(view, rec.prompt)


def test_add_special_tokens_follows_each_tokenizer(records, qwen2, mistral, deepseek):
    rec = records[0]
    view = tokenize_record(rec, teachers=TEACHERS, add_special_tokens=True)
    for ids, tok in zip([view.student_ids, *view.teacher_ids], [qwen2, mistral, deepseek]):
        assert ids.tolist() == tok(rec.prompt, add_special_tokens=True)["input_ids"]


def test_special_token_unpaired_when_only_the_teacher_has_it(records, mistral):
    """A BOS in front of the teacher ids only: left out of every chunk, the text still aligns."""
    enc = EvalTokenizer("pkg:qwen2", TEACHERS)
    view = enc(records[0])
    t_ids = np.concatenate([[mistral.bos_token_id], view.teacher_ids[0]])
    al = enc.aligners[0].align(view.student_ids, t_ids)
    assert 0 in al.teacher_unaligned.tolist()
    assert al.exact.sum() == view.alignments[0].exact.sum()


def test_eval_dataset_map_style_and_pickles(records):
    ds = EvalDataset(records, "pkg:qwen2", TEACHERS)
    assert isinstance(ds, torch.utils.data.Dataset) and len(ds) == len(records)
    blob = pickle.dumps(ds)
    assert len(blob) < 200_000  # records and names only, no tokenizers or tables
    ds[0]
    assert len(pickle.dumps(ds)) == len(blob)  # the built aligner does not travel
    again = pickle.loads(blob)
    loader = torch.utils.data.DataLoader(again, batch_size=4, collate_fn=EvalDataset.collate)
    views = [v for batch in loader for v in batch]
    assert [v.task_id for v in views] == [r.task_id for r in records]
    assert np.array_equal(views[-1].student_ids, ds[len(ds) - 1].student_ids)


def test_from_pipeline_config(records):
    cfg = PipelineConfig(source={"urls": ["x/"]}, student={"tokenizer": "pkg:qwen2"},
                         teachers=[{"tokenizer": "pkg:mistral-v3", "max_comb_len": 2},
                                   {"tokenizer": "pkg:deepseek-v4"}])
    ds = EvalDataset.from_pipeline(records[:1], cfg)
    assert ds.encoder.student == "pkg:qwen2"
    assert [a.max_comb_len for a in ds.encoder.aligners] == [2, 4]  # each teacher's own setting
    assert len(ds[0].alignments) == 2
    with pytest.raises(ConfigError, match=r"teachers\[1\]\.tokenizer"):
        EvalDataset(records, "pkg:qwen2", [{"tokenizer": "pkg:deepseek-v4"}, {"name": "t0"}])
    with pytest.raises(ConfigError, match="at least one teacher"):
        EvalDataset(records, "pkg:qwen2", [])
