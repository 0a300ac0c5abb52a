"""Cross-tokenizer alignment: student and teacher token ranges that cover the same text.

``tables`` maps token ids to canonical bytes per tokenizer (verified, cached per process),
``core`` holds the numba byte kernels (linear boundary-intersection walk, local repair, byte
verification) for ids-only inputs, ``text`` the original-text-offsets walk used where the text is
known, ``aligner`` the :class:`Aligner` API and ``multi`` the joint chunking for several teachers.
"""

from .aligner import Aligner, Alignment, AlignmentMetrics, UnalignedReason, to_reference_format
from .multi import JointAlignment, MultiAligner, joint_refinement
from .tables import ByteTable, Role, byte_table

__all__ = [
    "Aligner",
    "Alignment",
    "AlignmentMetrics",
    "ByteTable",
    "JointAlignment",
    "MultiAligner",
    "Role",
    "UnalignedReason",
    "byte_table",
    "joint_refinement",
    "to_reference_format",
]
