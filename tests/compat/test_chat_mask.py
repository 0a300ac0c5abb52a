"""NeMo-RL compat in chat mode: a chat batch from the real pipeline (qwen2 ChatML student,
DeepSeek teacher in the Llama-3 layout) goes through ``stream_samples`` and the collator, whose
``token_mask`` is then the chat ``loss_mask`` (assistant turns only), not ones on every token."""

from __future__ import annotations

import pytest
import torch

from xtok_stream.compat.datum import SampleValueError, stream_samples
from xtok_stream.compat.nemo_rl import CrossTokenizerCollator, TeacherCTSpec

STUDENT, TEACHER = "pkg:qwen2", "pkg:deepseek-v4"


@pytest.fixture(scope="module")
def chat_batch(tmp_path_factory):
    from tests.chat.conftest import chat_config
    from xtok_stream.chat.corpus import iter_conversations
    from xtok_stream.config import load_config
    from xtok_stream.io.shards import write_shards
    from xtok_stream.pipeline import build_consumer

    out = tmp_path_factory.mktemp("chat-compat")
    infos = write_shards(list(iter_conversations(8, max_chars=300)), str(out),
                         samples_per_shard=4)
    shards = [str(out / i.name) for i in infos]
    cfg = chat_config(shards, seq_len=128, teachers=(TEACHER,))
    cfg.update(num_lanes=1, batch_size=4)
    consumer = build_consumer(load_config(cfg), shards)  # all (one) lanes
    batch = next(consumer)
    consumer.close()
    return batch


def collator() -> CrossTokenizerCollator:
    spec = TeacherCTSpec(teacher_tokenizer_name=TEACHER, student_tokenizer_name=STUDENT,
                         max_teacher_len=256)
    return CrossTokenizerCollator(pad_token_id=0, make_sequence_length_divisible_by=8,
                                  teacher_ct_specs=[spec], use_nemo_rl=False)


def test_token_mask_is_the_chat_loss_mask(chat_batch):
    samples = stream_samples(chat_batch)
    assert len(samples) == int((chat_batch["sample_mask"] > 0).sum()) > 0
    out = collator()(samples)
    for b, n in enumerate(out["input_lengths"].tolist()):
        want = chat_batch["loss_mask"][b, :n]
        assert 0 < want.sum() < n  # assistant turns only: a real mask, not all ones
        assert torch.equal(out["token_mask"][b, :n], want)
        assert not out["token_mask"][b, n:].any()
        assert torch.equal(out["input_ids"][b, :n], chat_batch["input_ids"][b, :n])
    assert out["per_teacher_ct_data"][0]["num_chunks"][0] > 0


def test_text_rows_count_every_token(chat_batch):
    text_batch = {k: v for k, v in chat_batch.items() if k != "loss_mask"}
    out = collator()(stream_samples(text_batch))
    for b, n in enumerate(out["input_lengths"].tolist()):
        assert out["token_mask"][b, :n].eq(1).all()


def test_token_mask_and_loss_mask_together_are_refused(chat_batch):
    s = stream_samples(chat_batch)[0]
    with pytest.raises(SampleValueError, match="both token_mask and loss_mask") as err:
        collator()([{**s, "token_mask": torch.ones_like(s["loss_mask"])}])
    assert err.value.field == "loss_mask" and "batch[0]" in str(err.value)
