"""What a precomputed shard was made for, and the check that it fits the pipeline reading it.

The *spec* holds every setting that decides a lane's sequences and the teacher outputs on them::

    {"v": 1,
     "student":  {"tokenizer": "pkg:qwen2", "vocab_sha256": "150b...", "seq_len": 4096},
     "teachers": {"0": {"name": "mistral-v3", "tokenizer": "pkg:mistral-v3",
                        "vocab_sha256": "ed6d...", "max_len": 8192, "max_comb_len": 4}, ...},
     "num_lanes": 16, "seed": 0, "shuffle": {"shards": true, "buffer": 0}}

``vocab_sha256`` hashes the tokenizer's serialized form, so a local tokenizer folder whose
contents changed under the same path is caught too. Settings that only shape collation
(``batch_size``, ``pad_to_multiple_of``, ``exact_token_match_only``, projection fields) are not
in it: they may differ. Its fingerprint rides in every sample's ``meta.json``; the whole spec in
the first sample of each shard and in ``precompute.json``. A mismatch is a
:class:`~xtok_stream.errors.ConfigError` naming the differing fields - never silent reuse.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import PipelineConfig
from ..errors import ConfigError
from ..state import diff_fields, fingerprint
from ..tokenizers import vocab_sha256

SPEC_VERSION = 1


def pipeline_spec(config: PipelineConfig) -> dict:
    """The spec of ``config`` (loads the tokenizers once per process to hash them)."""
    return {
        "v": SPEC_VERSION,
        "student": {"tokenizer": config.student.tokenizer,
                    "vocab_sha256": vocab_sha256(config.student.tokenizer),
                    "seq_len": config.student.seq_len},
        # a mapping, not a list, so a mismatch names "teachers.1.tokenizer"
        "teachers": {str(i): {"name": t.key, "tokenizer": t.tokenizer,
                              "vocab_sha256": vocab_sha256(t.tokenizer),
                              "max_len": config.teacher_max_len(t),
                              "max_comb_len": t.max_comb_len}
                     for i, t in enumerate(config.teachers)},
        "num_lanes": config.num_lanes,
        "seed": config.seed,
        "shuffle": config.shuffle.model_dump(),
    }


def spec_fingerprint(spec: Mapping) -> str:
    return fingerprint(spec)


def check_spec(saved: Mapping, now: Mapping, *, url: str) -> None:
    """Raise ConfigError listing the fields where the shard's spec differs from the pipeline's."""
    diffs = diff_fields(saved, now)
    if diffs:
        raise ConfigError(
            f"precomputed shard {url} was made for another pipeline: " + "; ".join(diffs)
            + " (saved = the shard, now = this pipeline). Re-run `xtok convert --precompute` "
            "with this pipeline, or stream the text shards with source.format: tar")
