"""Projection matrices: the student x teacher vocabulary map a cross-tokenizer loss uses.

* :mod:`.matrix` — :class:`Projection`, a coalesced COO map (rows = student, cols = teacher),
  with ``reverse()``, ``topk(k)`` and ``to_torch_sparse()``.
* :mod:`.files` — ``load_projection`` (our safetensors COO and NeMo-RL's dense top-k / sparse
  ``torch.save`` files, read with ``weights_only``) and ``save_projection``.
* :mod:`.build` — ``build_projection``: derive a map from the two vocabularies' bytes.
"""

from .build import build_projection
from .files import detect_format, load_projection, save_projection, save_reference
from .matrix import Projection

__all__ = ["Projection", "build_projection", "detect_format", "load_projection",
           "save_projection", "save_reference"]
