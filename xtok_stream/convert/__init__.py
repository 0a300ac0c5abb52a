"""Corpus -> WebDataset tar shards, planned first so every engine writes identical bytes.

``plan``      inputs -> scans -> shards as row slices (pure, cached as ``_xtok/plan.json``)
``write``     one shard task: read slices, encode, store atomically, done marker
``engines``   local process pool, Ray, array-job slot from the environment
``manifest``  ``manifest.json`` from results/markers; ``--finalize`` checks every shard
``run``       the driver ``convert()`` used by ``xtok convert``
``precompute`` ``xtok convert --precompute``: every lane of a pipeline run once into shards
"""

from .plan import ConvertConfig, Plan
from .run import Summary, convert

__all__ = ["ConvertConfig", "Plan", "Summary", "convert"]
