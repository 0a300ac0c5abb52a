"""xtok_stream: streaming data for cross-tokenizer knowledge distillation.

WebDataset shards on any fsspec store -> packed fixed-length sequences -> student (and teacher)
tokens -> alignment -> batches for every DDP rank, with JSON cursors that resume exactly.

The public API is importable from here (``from xtok_stream import Loader, load_config``); names
resolve lazily on first use (PEP 562), so ``import xtok_stream`` stays cheap and pulls in neither
torch nor numba until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Aligner": "xtok_stream.align",
    "ConfigError": "xtok_stream.errors",
    "DecodeError": "xtok_stream.errors",
    "Loader": "xtok_stream.loader",
    "MultiAligner": "xtok_stream.align",
    "PipelineConfig": "xtok_stream.config",
    "SourceError": "xtok_stream.errors",
    "StateError": "xtok_stream.errors",
    "TRANSPORT_ONLY": "xtok_stream.config",
    "UnalignedReason": "xtok_stream.align",
    "XtokError": "xtok_stream.errors",
    "build_consumer": "xtok_stream.pipeline",
    "build_lane": "xtok_stream.pipeline",
    "canonical": "xtok_stream.testing",
    "check_resume": "xtok_stream.testing",
    "load_config": "xtok_stream.config",
    "load_state": "xtok_stream.io.statefile",
    "load_tokenizer": "xtok_stream.tokenizers",
    "merge_states": "xtok_stream.loader",
    "save_state": "xtok_stream.io.statefile",
}

__all__ = [  # sorted (tests/test_api.py)
    "Aligner",
    "ConfigError",
    "DecodeError",
    "Loader",
    "MultiAligner",
    "PipelineConfig",
    "SourceError",
    "StateError",
    "TRANSPORT_ONLY",
    "UnalignedReason",
    "XtokError",
    "build_consumer",
    "build_lane",
    "canonical",
    "check_resume",
    "load_config",
    "load_state",
    "load_tokenizer",
    "merge_states",
    "save_state",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at runtime __getattr__ imports on demand
    from .align import Aligner, MultiAligner, UnalignedReason
    from .config import TRANSPORT_ONLY, PipelineConfig, load_config
    from .errors import ConfigError, DecodeError, SourceError, StateError, XtokError
    from .io.statefile import load_state, save_state
    from .loader import Loader, merge_states
    from .pipeline import build_consumer, build_lane
    from .testing import canonical, check_resume
    from .tokenizers import load_tokenizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xtok_stream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
