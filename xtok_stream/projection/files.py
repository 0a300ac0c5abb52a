"""Read and write projection files: ours (safetensors COO) and the reference's two torch files.

Formats, told apart by their first bytes and then by content:

* **ours** (safetensors): ``student_ids`` int64 [nnz], ``teacher_ids`` int64 [nnz], ``weights``
  float32 [nnz]; string metadata ``format=xtok-projection``, ``version``, ``n_student``,
  ``n_teacher`` and whatever the writer adds (tokenizer names, build parameters, statistics).
* **reference dense top-k** (``torch.save``): ``{"indices": int64 [V_s, k], "likelihoods":
  float [V_s, k], ...}``; ``use_sparse_format: false`` in NeMo-RL. Index -1 / weight 0 are padding.
* **reference sparse** (``torch.save``): ``{(student_id, teacher_id): weight}``;
  ``use_sparse_format: true``. Weights may be Python numbers, 0-d tensors or numpy scalars.

Torch files are read with ``torch.load(weights_only=True)``: only tensors, numbers, strings,
tuples, lists and dicts (plus numpy scalars, allow-listed here) are rebuilt, never arbitrary
objects, so a hostile file cannot run code. The reference divides the loaded weights by
``projection_matrix_multiplier``; ``load_projection(multiplier=...)`` does the same for every
format, and ``project_teacher_to_student=True`` returns the transpose, as its
``create_reverse_projection_matrix`` does.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .matrix import Projection

FORMAT = "xtok-projection"
VERSION = "1"


def detect_format(path: str | os.PathLike) -> str:
    """``"safetensors"`` or ``"torch"`` from the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except FileNotFoundError as exc:
        raise ConfigError(f"projection file not found: {path} (option projection_matrix_path; "
                          f"build one with `xtok projection build`)") from exc
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "torch"
    raise ConfigError(f"{path}: neither a safetensors file nor a torch.save file")


def save_projection(path: str | os.PathLike, proj: Projection,
                    metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``proj`` (forward direction) as safetensors COO, atomically."""
    from safetensors.numpy import save_file

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    meta.update(format=FORMAT, version=VERSION, n_student=str(proj.n_student),
                n_teacher=str(proj.n_teacher))
    tensors = {"student_ids": np.ascontiguousarray(proj.student_ids, np.int64),
               "teacher_ids": np.ascontiguousarray(proj.teacher_ids, np.int64),
               "weights": np.ascontiguousarray(proj.weights, np.float32)}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_reference(path: str | os.PathLike, proj: Projection, *, sparse: bool,
                   top_k: int | None = None) -> None:
    """Write the reference's format: the sparse tuple dict, or dense top-k (needs ``top_k``)."""
    import torch

    if sparse:
        obj: Any = dict(zip(zip(proj.student_ids.tolist(), proj.teacher_ids.tolist()),
                            proj.weights.tolist()))
    else:
        if not top_k:
            raise ConfigError("the dense top-k format needs --top-k")
        idx, val = proj.topk(top_k)
        obj = {"indices": torch.from_numpy(idx), "likelihoods": torch.from_numpy(val)}
    torch.save(obj, str(path))


def _safe_torch_load(path: str) -> Any:
    import torch

    scalars = [np.dtype]
    try:  # numpy scalars pickle through these; they rebuild plain data only
        scalars.append(np._core.multiarray.scalar)
    except AttributeError:  # numpy < 2
        scalars.append(np.core.multiarray.scalar)
    if hasattr(np, "dtypes"):
        scalars += [getattr(np.dtypes, n) for n in ("Float16DType", "Float32DType",
                                                    "Float64DType", "Int32DType", "Int64DType")]
    try:
        with torch.serialization.safe_globals(scalars):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (found {m.group(1)})" if m else ""
        raise ConfigError(
            f"{path}: refusing to load: it holds a Python object beyond tensors, numbers, "
            f"strings, tuples and dicts{what}, and unpickling it could run code (torch.load "
            f"weights_only=True). Re-save the projection as a plain dict of tensors/numbers"
        ) from exc
    except Exception as exc:  # corrupt/truncated file: name it
        raise ConfigError(f"{path}: cannot read this torch file: {exc}") from exc


def _shape(x) -> str:
    return "[" + ", ".join(map(str, getattr(x, "shape", ()))) + "]"


def _from_dense(obj: dict, path: str, n_student, n_teacher) -> Projection:
    import torch

    ind, lik = obj.get("indices"), obj.get("likelihoods")
    rows = "V_s" if n_student is None else n_student
    want = f"'indices' int64 [{rows}, k] and 'likelihoods' float [{rows}, k]"
    if not (isinstance(ind, torch.Tensor) and isinstance(lik, torch.Tensor)):
        raise ConfigError(f"{path}: dense top-k projection needs tensors {want}; found "
                          f"{type(ind).__name__} and {type(lik).__name__}")
    if (ind.dim() != 2 or ind.shape != lik.shape or ind.is_floating_point() or ind.is_complex()
            or not lik.is_floating_point()):
        raise ConfigError(f"{path}: dense top-k projection needs {want}; found 'indices' "
                          f"{ind.dtype} {_shape(ind)} and 'likelihoods' {lik.dtype} {_shape(lik)}")
    if n_student is not None and ind.shape[0] != n_student:
        raise ConfigError(
            f"{path}: 'indices'/'likelihoods' have shape {_shape(ind)} but the student vocabulary "
            f"has {n_student} ids, so [{n_student}, k] is expected; pass the student model's "
            f"vocabulary size (n_student / --n-student) if its embedding is padded")
    ind_np = ind.to(torch.int64).numpy()
    if n_teacher is None:  # as the reference's reverse map: the largest index + 1
        n_teacher = int(ind_np.max()) + 1 if ind_np.size else 0
    return Projection.from_topk(ind_np, lik.float().numpy(), n_teacher, source=path)


def _from_sparse(obj: dict, path: str, n_student, n_teacher) -> Projection:
    want = "a dict {(student_id, teacher_id): weight}"
    if not obj:
        return Projection.from_coo([], [], [], n_student or 0, n_teacher or 0, source=path)
    try:
        keys = np.array(list(obj.keys()))
        w = np.array([float(v) for v in obj.values()], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: sparse projection must be {want} with numeric weights: "
                          f"{exc}") from exc
    if keys.ndim != 2 or keys.shape[1] != 2 or keys.dtype.kind not in "iu":
        first = next(iter(obj))
        raise ConfigError(f"{path}: sparse projection must be {want} (keys of shape [nnz, 2]); "
                          f"found keys like {first!r}")
    s, t = keys[:, 0].astype(np.int64), keys[:, 1].astype(np.int64)
    n_student = int(s.max()) + 1 if n_student is None else n_student
    n_teacher = int(t.max()) + 1 if n_teacher is None else n_teacher
    return Projection.from_coo(s, t, w, n_student, n_teacher, source=path)


def _from_safetensors(path: str, n_student, n_teacher) -> Projection:
    from safetensors import safe_open

    try:
        with safe_open(path, "np") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            need = {"student_ids", "teacher_ids", "weights"}
            if not need <= keys:
                raise ConfigError(
                    f"{path}: safetensors projection needs tensors student_ids int64 [nnz], "
                    f"teacher_ids int64 [nnz], weights float32 [nnz]; "
                    f"missing {sorted(need - keys)}")
            arrays = {k: f.get_tensor(k) for k in need}
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{path}: cannot read this safetensors file: {exc}") from exc
    for k, a in arrays.items():
        if a.ndim != 1:
            raise ConfigError(f"{path}: '{k}' must have shape [nnz], found {_shape(a)}")
    try:
        n_s = int(meta.get("n_student")) if n_student is None else n_student
        n_t = int(meta.get("n_teacher")) if n_teacher is None else n_teacher
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: metadata lacks n_student/n_teacher; pass them") from exc
    return Projection.from_coo(arrays["student_ids"], arrays["teacher_ids"], arrays["weights"],
                               n_s, n_t, source=path, meta=meta)


def load_projection(path: str | os.PathLike, *, use_sparse_format: bool | None = None,
                    n_student: int | None = None, n_teacher: int | None = None,
                    multiplier: float = 1.0, project_teacher_to_student: bool = False,
                    ) -> Projection:
    """Load any of the three formats (see the module docstring) as a :class:`Projection`.

    ``n_student``/``n_teacher``: the vocabulary sizes (``len(tokenizer)``, or the model's padded
    embedding size); every id must fit and a dense file must have ``n_student`` rows. ``None``
    takes them from our metadata, or from the largest id + 1 in a reference file.
    ``use_sparse_format``: ``None`` detects; ``True``/``False`` must agree with the file.
    Weights are divided by ``multiplier``; ``project_teacher_to_student`` returns the transpose.
    """
    path = str(path)
    if multiplier == 0:
        raise ConfigError("projection_matrix_multiplier must not be 0")
    if detect_format(path) == "safetensors":
        proj = _from_safetensors(path, n_student, n_teacher)
    else:
        obj = _safe_torch_load(path)
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}: expected a dict (dense top-k or sparse tuple map), "
                              f"found {type(obj).__name__}")
        dense = "indices" in obj or "likelihoods" in obj
        if use_sparse_format is not None and use_sparse_format == dense:
            raise ConfigError(
                f"{path}: file holds the {'dense top-k' if dense else 'sparse'} format but "
                f"use_sparse_format={use_sparse_format}; set use_sparse_format: {not dense}")
        proj = (_from_dense if dense else _from_sparse)(obj, path, n_student, n_teacher)
    if multiplier != 1.0:
        proj = proj.scaled(1.0 / multiplier)
    return proj.reverse() if project_teacher_to_student else proj
