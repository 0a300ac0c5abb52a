"""The one place stages are wired together.

    lane:      read -> [shuffle] -> pack -> (teacher stages, next issues) 
    consumer:  mux(lanes it owns) -> batch

A lane depends only on (config, shard list, lane index); a consumer only chooses lanes. Teacher
tokenize/align stages are 1:1 maps over ``PackedSequence`` that slot in after ``pack``; they add
their tensors to the batch through ``Batcher.collators``.
"""

from __future__ import annotations

import functools

from .config import PipelineConfig
from .dist.lanes import consumer_lanes
from .stages.batch import Batcher
from .stages.mux import LaneMux
from .stages.pack import Packer
from .stages.read import DocumentReader
from .stages.shuffle import Shuffler
from .tokenizers import load_tokenizer


def build_lane(config: PipelineConfig, shards: list[str], lane: int):
    reader = DocumentReader(
        shards,
        lane=lane,
        num_lanes=config.num_lanes,
        seed=config.seed,
        epochs=config.epochs,
        shuffle_shards=config.shuffle.shards,
        text_field=config.source.text_field,
        storage_options=config.source.storage_options,
    )
    docs = (
        Shuffler(reader, size=config.shuffle.buffer, seed=config.seed, lane=lane)
        if config.shuffle.buffer
        else reader
    )
    return Packer(docs, tokenizer=config.student.tokenizer, seq_len=config.student.seq_len)


def _pad_id(spec: str) -> int:
    tok = load_tokenizer(spec)
    return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def build_consumer(
    config: PipelineConfig, shards: list[str], consumer: int, consumers: int
) -> Batcher:
    lanes = {
        lane: build_lane(config, shards, lane)
        for lane in consumer_lanes(consumer, consumers, config.num_lanes)
    }
    return Batcher(
        LaneMux(lanes),
        batch_size=config.batch_size,
        seq_len=config.student.seq_len,
        pad_id=functools.partial(_pad_id, config.student.tokenizer),
        pad_to_multiple_of=config.pad_to_multiple_of,
    )
