"""The one place stages are wired together.

    lane:      read -> [shuffle] -> pack -> teacher 1 -> ... -> teacher K
    consumer:  mux(lanes it owns) -> batch

A lane depends only on (config, shard list, lane index); a consumer only chooses lanes (which,
is the loader's business: ``lanes.consumer_lanes``). The consumer's state is split into and merged
from per-lane cursors here (:func:`consumer_state`, :func:`split_consumer_state`), so the loader
never opens the batch or mux envelopes. Teacher
stages are 1:1 maps over ``PackedSequence`` after ``pack``; they add their tensors to the batch
through ``Batcher.teacher_collators``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from .chat.messages import native_text
from .chat.pipeline import chat_lane
from .chat.teacher import collate as collate_chat_teacher
from .config import PipelineConfig
from .errors import ConfigError
from .io.urls import LANE_SHARD
from .precompute.read import PrecomputedReader
from .precompute.spec import pipeline_spec
from .stages.batch import Batcher
from .stages.mix import build_mixed_lane
from .stages.mux import LaneMux
from .stages.pack import Packer
from .stages.read import DocumentReader
from .stages.read_arrow import ArrowDocumentReader
from .stages.shuffle import Shuffler
from .stages.teacher import TeacherAligner
from .stages.teacher import collate as collate_teacher
from .state import nested
from .tokenizers import load_tokenizer


def build_lane(config: PipelineConfig, shards: list[str], lane: int):
    if config.sources is not None:  # a mixture: one such lane per source, blended (stages/mix.py)
        return build_mixed_lane(config, shards, lane, build_lane)
    if config.source.format == "precomputed":  # packed + tokenized + aligned at convert time
        return _precomputed_reader(config, shards, lane)
    if config.source.format == "arrow":
        reader = _arrow_reader(config, shards, lane)
    else:
        reader = _tar_reader(config, shards, lane)
    docs = (
        Shuffler(reader, size=config.shuffle.buffer, seed=config.seed, lane=lane)
        if config.shuffle.buffer
        else reader
    )
    if config.chat is not None:  # conversations: chat/ (own packing and teacher stages)
        return chat_lane(config, docs)
    stage = Packer(docs, tokenizer=config.student.tokenizer, seq_len=config.student.seq_len)
    for teacher in config.teachers:
        stage = TeacherAligner(stage, student=config.student.tokenizer, teacher=teacher,
                                 max_len=config.teacher_max_len(teacher))
    return stage


def _tar_reader(config: PipelineConfig, shards: list[str], lane: int) -> DocumentReader:
    return DocumentReader(
        shards,
        lane=lane,
        num_lanes=config.num_lanes,
        seed=config.seed,
        epochs=config.epochs,
        shuffle_shards=config.shuffle.shards,
        text_field=config.sample_field,
        storage_options=config.source.storage_options,
        bad_data=config.source.on_bad_data,
        retry=config.source.retry,
    )


def _arrow_reader(config: PipelineConfig, shards: list[str], lane: int) -> ArrowDocumentReader:
    src = config.source
    return ArrowDocumentReader(
        shards, lane=lane, num_lanes=config.num_lanes, seed=config.seed, epochs=config.epochs,
        shuffle_shards=config.shuffle.shards, text_field=config.sample_field,
        native=native_text if config.chat is not None else None,
        storage_options=src.storage_options, bad_data=src.on_bad_data, retry=src.retry,
        val_split=src.val_split, split=src.split,
    )


def _precomputed_reader(config: PipelineConfig, shards: list[str], lane: int
                        ) -> PrecomputedReader:
    """``source.format: precomputed``: the reader checks every sample against this config's
    spec (computed from the config validated here, not re-parsed in each process)."""
    if not any(LANE_SHARD.search(u) for u in shards):
        shown = ", ".join(shards[:3]) + (", ..." if len(shards) > 3 else "")
        raise ConfigError(f"source.format: precomputed, but no shard among source.urls is named "
                          f"lane{{L}}-{{k}}.tar ({shown}); point source.urls at the --out folder "
                          "of `xtok convert --precompute`")
    return PrecomputedReader(
        shards, lane=lane, teachers=[t.key for t in config.teachers],
        spec=functools.partial(pipeline_spec, config), epochs=config.epochs,
        storage_options=config.source.storage_options, retry=config.source.retry,
        bad_data=config.source.on_bad_data,
    )


def pad_id(spec: str) -> int:
    """The tokenizer's pad id, else its EOS (as the reference does)."""
    tok = load_tokenizer(spec)
    return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def _collate_teacher(views, *, config: PipelineConfig, teacher) -> dict:
    collate = collate_chat_teacher if config.chat is not None else collate_teacher
    return collate(
        views, student_width=-(-config.student.seq_len // config.pad_to_multiple_of)
        * config.pad_to_multiple_of, width=config.teacher_width(teacher),
        pad_id=pad_id(teacher.tokenizer), exact_token_match_only=teacher.exact_token_match_only,
    )


def build_consumer(config: PipelineConfig, shards: list[str], lanes: Iterable[int] | None = None
                   ) -> Batcher:
    """The stream of one consumer: the given lanes (default: all), muxed and batched."""
    lanes = range(config.num_lanes) if lanes is None else lanes
    return _batcher(config, LaneMux({lane: build_lane(config, shards, lane) for lane in lanes}))


def empty_batch(config: PipelineConfig) -> dict:
    """An all-padding batch of this config's shapes (no lane is built, nothing is read)."""
    return _batcher(config, LaneMux({})).empty_batch()


def consumer_state(lanes: Mapping[str, Mapping], next_lane: int = 0) -> dict:
    """A consumer's state from lane cursors (keys: decimal lane ids) and the mux position."""
    return Batcher.wrap(LaneMux.merge_state(lanes, next_lane))


def split_consumer_state(state: Mapping) -> tuple[int, dict[str, Mapping]]:
    """``(next_lane, {lane id: lane cursor})`` of a consumer's state (envelopes checked; a bad
    one raises StateError naming its path below the consumer, e.g. ``source.next_lane``)."""
    source = Batcher.unwrap(state)
    with nested("source"):
        return LaneMux.split_state(source)


def _batcher(config: PipelineConfig, mux: LaneMux) -> Batcher:
    return Batcher(
        mux,
        batch_size=config.batch_size,
        seq_len=config.student.seq_len,
        pad_id=functools.partial(pad_id, config.student.tokenizer),
        pad_to_multiple_of=config.pad_to_multiple_of,
        loss_mask=config.chat is not None,
        teacher_collators={
            t.key: functools.partial(_collate_teacher, config=config, teacher=t)
            for t in config.teachers
        },
    )
