"""Pre-computed shards: packed sequences with every teacher's tokens and alignment, stored once.

``xtok convert INPUT... --out DIR --precompute PIPELINE.yaml`` runs the pipeline's lanes
(read -> [shuffle] -> pack -> teacher 1..K, one pass) and stores every packed sequence as one
tar sample; ``source.format: precomputed`` streams them back without tokenizing or aligning::

    DIR/lane0000-000000.tar   lane 0's sequences 0..255, in the order lane 0 packed them
    DIR/lane0000-000001.tar   ... 256..
    DIR/lane0001-000000.tar   lane 1's
    DIR/precompute.json       spec + fingerprint, source shards, per-lane shard list
    DIR/pipeline.yaml         the pipeline with source.format: precomputed (ready to stream)
    DIR/text/                 text shards, when INPUT was Parquet/Arrow/JSONL (not tar)

``spec``   what must match between the shards and the pipeline streaming them (fingerprint)
``read``   ``PrecomputedReader``: one lane's sequences, cursor ``{epoch, slot, offset}``

Writing lives above the pipeline (it runs it): ``convert/precompute.py`` (``precompute()``
drives all lanes on an engine) and ``cli/precompute.py`` (the ``--precompute`` flow of
``xtok convert``); ``pipeline.py`` wires the reader. This package imports neither.

See docs/precompute.md.
"""

from .read import PrecomputedReader
from .spec import check_spec, pipeline_spec

__all__ = ["PrecomputedReader", "check_spec", "pipeline_spec"]
