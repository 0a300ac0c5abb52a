"""Drop-in for NeMo-RL's cross-tokenizer collator (``nemo_rl/data/cross_tokenizer_collate.py``).

``CrossTokenizerCollator`` takes NeMo-RL ``DatumSpec`` samples (or simple ``input_ids`` dicts;
see :mod:`.datum`), builds upstream's student batch, re-tokenizes each sample's text with every
teacher tokenizer, aligns student and teacher tokens with :class:`xtok_stream.align.Aligner`
and adds the reference's per-teacher dict: ``aligned_pairs`` (the reference's 7-tuples),
``teacher_data`` and the filtered chunk COO maps. As the ``collate_fn`` of a
``StatefulDataLoader`` with workers it pickles only its primitives and builds tokenizers and
aligners lazily, once per worker. It holds no cursor: resume is the DataLoader's state.

A worked example (student qwen2 padded to a multiple of 4, teacher max_teacher_len=4, mistral
pads on the left)::

    student  [Hello][ world][!] <pad>          input_lengths 3
    teacher  <pad>[▁Hello][▁world][!]          teacher input_lengths 3
    aligned rows: student[0:3] with teacher[1:4]  (pads are never aligned)
    aligned_pairs  (['Hello'], ['▁Hello'], 0, 1, 1, 2, True), ... indices in the padded rows
    student_chunk_coo [[0,0],[1,1],[2,2]]   teacher_chunk_coo [[1,0],[2,1],[3,2]]   num_chunks 3

What differs from the reference on purpose (pads never aligned, unpadded decode fallback,
``dp_chunk_size``/``learnable``/``use_align_fast`` ignored, projection on demand) is listed in
``docs/compat.md``.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, TypedDict

import numpy as np
import torch

from ..errors import ConfigError
from .batched import BatchedDict, nemo_rl_api
from .datum import collate_simple, flatten, is_datum, prepare_datums, rl_collate


class TeacherCTSpec(TypedDict, total=False):
    """Per-teacher settings; every field is a pickle-cheap primitive (same keys as the reference).

    Required here: ``teacher_tokenizer_name``, ``student_tokenizer_name``, ``max_teacher_len``.
    Names go through :func:`xtok_stream.tokenizers.load_tokenizer` (hub name, local folder or
    ``pkg:NAME``).
    """

    teacher_tokenizer_name: str
    student_tokenizer_name: str
    projection_matrix_path: str  # "" = none; only read by CrossTokenizerCollator.projection()
    use_sparse_format: bool
    learnable: bool  # accepted, unused: a learnable projection lives in the trainer
    max_comb_len: int  # default 4
    projection_matrix_multiplier: float
    project_teacher_to_student: bool
    max_teacher_len: int
    dp_chunk_size: int  # accepted, unused: the aligner is linear-time, no chunked DP
    exact_token_match_only: bool  # default False


_REQUIRED = ("teacher_tokenizer_name", "student_tokenizer_name", "max_teacher_len")
_DEFAULTS: dict[str, Any] = {
    "projection_matrix_path": "",
    "use_sparse_format": False,
    "learnable": False,
    "max_comb_len": 4,
    "projection_matrix_multiplier": 1.0,
    "project_teacher_to_student": False,
    "dp_chunk_size": 0,
    "exact_token_match_only": False,
}
_KEYS = frozenset(_REQUIRED) | frozenset(_DEFAULTS)
# Keys older NeMo-RL configs still carry (removed upstream): accepted, dropped, warned about once.
_LEGACY = {"use_align_fast": "the aligner here is always the fast, exact one"}
_warned: set[str] = set()


def _check_spec(spec: Any, i: int) -> dict | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"teacher_ct_specs[{i}] must be a dict (TeacherCTSpec) or None")
    for key in sorted(set(spec) & set(_LEGACY)):
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"TeacherCTSpec key '{key}' is deprecated (removed in NeMo-RL) and "
                          f"ignored: {_LEGACY[key]}; drop it from the config", DeprecationWarning,
                          stacklevel=4)
    spec = {k: v for k, v in spec.items() if k not in _LEGACY}
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigError(
            f"teacher_ct_specs[{i}] has unknown keys {unknown}; known: {sorted(_KEYS)}"
        )
    missing = [k for k in _REQUIRED if not spec.get(k)]
    if missing:
        raise ConfigError(f"teacher_ct_specs[{i}] lacks {missing}")
    out = {**_DEFAULTS, **spec}
    if int(out["max_teacher_len"]) < 1 or int(out["max_comb_len"]) < 1:
        raise ConfigError(
            f"teacher_ct_specs[{i}]: max_teacher_len and max_comb_len must be >= 1, got "
            f"{out['max_teacher_len']} and {out['max_comb_len']}"
        )
    return out


def build_chunk_coo(
    aligned_pairs: list,
    student_seq_len: int,
    teacher_seq_len: int,
    exact_token_match_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The reference's ``_build_chunk_coo`` on a list of 7-tuples: drop non-1:1 chunks (when
    ``exact_token_match_only``), ``-1`` sentinels and chunks ending past the padded lengths, then
    emit ``(student_coo int64 [n,2], teacher_coo int64 [m,2], num_chunks)`` rows
    ``(position, chunk_id)`` with survivors renumbered 0..num_chunks-1 (see ``align/chunks.py``)."""
    from ..align.chunks import chunk_coo

    if aligned_pairs:
        spans = np.asarray([p[2:6] for p in aligned_pairs], dtype=np.int64)
    else:
        spans = np.empty((0, 4), np.int64)
    s_coo, t_coo, n = chunk_coo(
        spans[:, 0:2], spans[:, 2:4], student_seq_len, teacher_seq_len, exact_token_match_only
    )
    return torch.from_numpy(s_coo), torch.from_numpy(t_coo), n


class CrossTokenizerCollator:
    """``collate_fn`` producing the reference's batch (see the module docstring and
    ``docs/compat.md``).

    DatumSpec samples give every key of upstream's batch: ``rl_collate_fn``'s (``message_log``,
    ``length`` int64 [B], ``loss_multiplier`` [B], ``extra_env_info``, ``task_name``, ``idx``,
    ``batch_max_length`` int64 [B], ``stop_strings``) plus ``input_ids`` int64 [B, T],
    ``input_lengths`` int32 [B], ``token_mask`` [B, T] (the flattened ``token_loss_mask``),
    ``sample_mask`` (= ``loss_multiplier``), ``flat_messages`` (with ``content``, ``role``,
    ``token_ids``, ``token_loss_mask``) and ``per_teacher_ct_data``. Simple samples give
    ``input_ids``, ``input_lengths``, ``token_mask``, ``sample_mask`` (alias ``loss_multiplier``)
    and ``per_teacher_ct_data``. T is the longest row rounded up to a multiple of
    ``make_sequence_length_divisible_by``.

    ``per_teacher_ct_data``: one entry per spec, ``None`` for a ``None`` spec, else a dict with
    ``teacher_input_ids`` int64 [B, max_teacher_len], ``aligned_pairs`` (B lists of 7-tuples),
    ``teacher_data`` (``input_ids``, ``input_lengths`` int64 [B], ``token_mask`` float32
    [B, max_teacher_len], ``sample_mask``), ``student_chunk_coo``/``teacher_chunk_coo`` (B int64
    [n, 2] tensors) and ``num_chunks`` (B ints).

    The batch, ``flat_messages`` and ``teacher_data`` are NeMo-RL ``BatchedDataDict``s when
    ``nemo_rl`` is importable (``use_nemo_rl=None``, the default; ``True`` requires it, ``False``
    never uses it), else :class:`~xtok_stream.compat.batched.BatchedDict` (a dict with ``.to()``,
    ``.shard_by_batch_size()``, ``.get_multimodal_dict()``).
    """

    def __init__(
        self,
        pad_token_id: int,
        make_sequence_length_divisible_by: int,
        teacher_ct_specs: list[TeacherCTSpec | None],
        fallback_student_tokenizer_name: str | None = None,
        use_nemo_rl: bool | None = None,
    ) -> None:
        if int(make_sequence_length_divisible_by) < 1:
            raise ConfigError(
                "make_sequence_length_divisible_by must be >= 1, got "
                f"{make_sequence_length_divisible_by}"
            )
        if use_nemo_rl and nemo_rl_api() is None:
            raise ConfigError("use_nemo_rl=True but nemo_rl is not importable; install NeMo-RL "
                              "or pass use_nemo_rl=None (use it when present)")
        self.pad_token_id = int(pad_token_id)
        self.make_seq_div_by = int(make_sequence_length_divisible_by)
        self.teacher_ct_specs = [_check_spec(s, i) for i, s in enumerate(teacher_ct_specs)]
        self.fallback_student_tokenizer_name = fallback_student_tokenizer_name
        self.use_nemo_rl = use_nemo_rl
        self._reset_lazy()

    # -- pickling: primitives only; tokenizers/aligners are rebuilt in each worker -------------
    def _reset_lazy(self) -> None:
        self._aligners: list | None = None
        self._student_tokenizer: Any = None
        self._projections: dict[int, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "pad_token_id": self.pad_token_id,
            "make_seq_div_by": self.make_seq_div_by,
            "teacher_ct_specs": self.teacher_ct_specs,
            "fallback_student_tokenizer_name": self.fallback_student_tokenizer_name,
            "use_nemo_rl": self.use_nemo_rl,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_lazy()

    # -- lazy per-process state ----------------------------------------------------------------
    def _get_aligners(self) -> list:
        if self._aligners is None:
            from ..align import Aligner
            from ..tokenizers import load_tokenizer

            self._aligners = [
                None
                if spec is None
                else Aligner(
                    load_tokenizer(spec["student_tokenizer_name"]),
                    load_tokenizer(spec["teacher_tokenizer_name"]),
                    max_comb_len=int(spec["max_comb_len"]),
                )
                for spec in self.teacher_ct_specs
            ]
        return self._aligners

    def _get_student_tokenizer(self) -> Any:
        if self._student_tokenizer is None:
            name = self.fallback_student_tokenizer_name or next(
                (s["student_tokenizer_name"] for s in self.teacher_ct_specs if s), None
            )
            if name is None:
                raise ConfigError(
                    "CrossTokenizerCollator needs a student tokenizer to decode samples without "
                    "'raw_text'; set fallback_student_tokenizer_name or give every sample raw_text"
                )
            from ..tokenizers import load_tokenizer

            self._student_tokenizer = load_tokenizer(name)
        return self._student_tokenizer

    def projection(self, teacher_index: int) -> Any:
        """The spec's projection matrix (``xtok_stream.projection.load_projection``: weights divided
        by ``projection_matrix_multiplier``, transposed when ``project_teacher_to_student``),
        loaded on first call in this process and cached; None when the spec has no
        ``projection_matrix_path``. Not part of the batch, as in the reference."""
        spec = self.teacher_ct_specs[teacher_index]
        if spec is None or not spec["projection_matrix_path"]:
            return None
        if teacher_index not in self._projections:
            try:
                from ..projection import load_projection
            except ImportError as exc:
                raise ConfigError(
                    "projection matrices need xtok_stream.projection, which this install lacks; "
                    f"clear projection_matrix_path of teacher_ct_specs[{teacher_index}]"
                ) from exc
            # Sizes: len(tokenizer), not the file's largest id + 1 (a DeepSeek-V4 file gave
            # 127,999 columns for 129,280 ids); widened only where the file holds larger ids
            # (a model's padded embedding).
            from ..tokenizers import load_tokenizer

            proj = load_projection(
                spec["projection_matrix_path"],
                use_sparse_format=bool(spec["use_sparse_format"]),
                n_student=None,
                n_teacher=None,
                multiplier=float(spec["projection_matrix_multiplier"]),
            )
            proj = dataclasses.replace(
                proj,
                n_student=max(proj.n_student, len(load_tokenizer(spec["student_tokenizer_name"]))),
                n_teacher=max(proj.n_teacher, len(load_tokenizer(spec["teacher_tokenizer_name"]))),
            )
            if spec["project_teacher_to_student"]:
                proj = proj.reverse()
            self._projections[teacher_index] = proj
        return self._projections[teacher_index]

    # -- the batch -----------------------------------------------------------------------------
    def _api(self) -> tuple | None:
        return None if self.use_nemo_rl is False else nemo_rl_api()

    def __call__(self, data_batch: list[dict]) -> Any:
        if not data_batch:
            raise ConfigError("CrossTokenizerCollator got an empty batch")
        api = self._api()
        bdict = api[0] if api else BatchedDict
        if is_datum(data_batch[0]):
            out, texts = self._collate_datums(data_batch, api)
        else:
            out, texts = collate_simple(data_batch, self.pad_token_id, self.make_seq_div_by, bdict)
        input_ids, sample_mask = out["input_ids"], out["sample_mask"]
        lengths = [int(n) for n in out["input_lengths"]]
        per_teacher: list[dict | None] = []
        if any(s is not None for s in self.teacher_ct_specs):
            known = texts is not None  # raw_text: align by original-text positions (align_text)
            if texts is None:  # decode the unpadded rows: pads never leak into the teacher's text
                texts = self._get_student_tokenizer().batch_decode(
                    [input_ids[b, :n].tolist() for b, n in enumerate(lengths)],
                    skip_special_tokens=True,
                )
            aligners = self._get_aligners()
        for t_idx, spec in enumerate(self.teacher_ct_specs):
            if spec is None:
                per_teacher.append(None)
                continue
            entry = self._teacher_entry(spec, aligners[t_idx], texts, input_ids, lengths,
                                        sample_mask, known)
            entry["teacher_data"] = bdict(entry["teacher_data"])
            per_teacher.append(entry)
        out["per_teacher_ct_data"] = per_teacher
        return out

    def _collate_datums(self, data_batch: list, api: tuple | None) -> tuple[Any, list | None]:
        """Upstream's path: rl_collate_fn, role-based masks, flatten, the training keys."""
        datums, texts = prepare_datums(data_batch)
        collate, flatten_fn = (api[1], api[2]) if api else (rl_collate, flatten)
        batch = collate(datums)
        flat, input_lengths = flatten_fn(
            batch["message_log"],
            pad_value_dict={"token_ids": self.pad_token_id},
            make_sequence_length_divisible_by=self.make_seq_div_by,
        ) if api else flatten_fn(batch["message_log"], self.pad_token_id, self.make_seq_div_by)
        batch["input_ids"] = flat["token_ids"]
        batch["input_lengths"] = input_lengths
        batch["token_mask"] = flat["token_loss_mask"]
        batch["sample_mask"] = batch["loss_multiplier"]
        batch["flat_messages"] = flat
        batch.update(flat.get_multimodal_dict(as_tensors=False))
        return batch, texts

    def _teacher_entry(self, spec, aligner, texts, input_ids, lengths, sample_mask,
                       known: bool = False) -> dict:
        from ..align.chunks import chunk_coo

        max_len = int(spec["max_teacher_len"])
        t_ids, t_att, t_offs = _encode_padded(aligner.teacher_tokenizer, texts, max_len)
        s_np = input_ids.numpy()
        s_len, t_len = s_np.shape[1], t_ids.shape[1]
        exact_only = bool(spec["exact_token_match_only"])
        pairs_all, s_coos, t_coos, n_chunks = [], [], [], []
        for b in range(len(texts)):
            s_real = s_np[b, : lengths[b]]  # students pad on the right: positions are unchanged
            lo, hi = _block(t_att[b].numpy(), b)
            t_real = t_ids[b].numpy()[lo:hi]
            # Align the real tokens only; teacher spans are then shifted into padded-row positions
            # (lo > 0 for a left-padding teacher tokenizer).
            a = _align(aligner, texts[b], s_real, t_real, t_offs[b], max_len) if known \
                else aligner.align(s_real, t_real)
            s_spans = a.student_spans.astype(np.int64)
            t_spans = a.teacher_spans.astype(np.int64) + lo
            s_tok = aligner.student_tokenizer.convert_ids_to_tokens(s_real.tolist())
            t_tok = aligner.teacher_tokenizer.convert_ids_to_tokens(t_real.tolist())
            pairs_all.append([
                (s_tok[s0:s1], t_tok[t0 - lo : t1 - lo], s0, s1, t0, t1, ex)
                for (s0, s1), (t0, t1), ex
                in zip(s_spans.tolist(), t_spans.tolist(), a.exact.tolist())
            ])  # fmt: skip
            sc, tc, n = chunk_coo(s_spans, t_spans, s_len, t_len, exact_only)
            s_coos.append(torch.from_numpy(sc))
            t_coos.append(torch.from_numpy(tc))
            n_chunks.append(n)
        teacher_data = {
            "input_ids": t_ids,
            "input_lengths": t_att.sum(dim=1),
            "token_mask": (t_att > 0).to(torch.float32),
            "sample_mask": sample_mask,
        }
        return {
            "teacher_input_ids": t_ids,
            "aligned_pairs": pairs_all,
            "teacher_data": teacher_data,
            "student_chunk_coo": s_coos,
            "teacher_chunk_coo": t_coos,
            "num_chunks": n_chunks,
        }


def _encode_padded(tokenizer: Any, texts: list[str], max_len: int):
    """``tokenizer(texts, max_length=max_len, padding="max_length", truncation=True)`` as the
    reference calls it, padding by hand with ``pad_token_id`` or, when the tokenizer has none, its
    EOS (the reference sets ``pad_token = eos_token``; doing it by hand leaves the process-wide
    cached tokenizer untouched). Pads go on the tokenizer's ``padding_side``."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError(
            f"teacher tokenizer '{getattr(tokenizer, 'name_or_path', '?')}' has neither a pad "
            "nor an EOS token; pick a teacher_tokenizer_name that defines one"
        )
    out = tokenizer(texts, max_length=max_len, truncation=True, padding=False,
                    return_offsets_mapping=True)
    enc = out["input_ids"]
    ids = torch.full((len(texts), max_len), int(pad), dtype=torch.int64)
    att = torch.zeros((len(texts), max_len), dtype=torch.int64)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for b, row in enumerate(enc):
        n = len(row)
        lo = max_len - n if left else 0
        ids[b, lo : lo + n] = torch.as_tensor(row, dtype=torch.int64)
        att[b, lo : lo + n] = 1
    return ids, att, out["offset_mapping"]


def _align(aligner: Any, text: str, s_ids: np.ndarray, t_ids: np.ndarray, t_offsets: list,
           max_len: int):
    """``raw_text`` known: exact = same span of the text (``Aligner.align_text``). Falls back to
    ids-only ``align`` where the student ids do not spell the text (e.g. a chat template around
    it) and no student offsets exist, as the pipeline's teacher stage does."""
    truncated = len(t_ids) >= max_len and max((e for _, e in t_offsets), default=0) < len(text)
    try:
        return aligner.align_text(text, s_ids, t_ids, None, t_offsets, teacher_truncated=truncated)
    except ConfigError:
        return aligner.align(s_ids, t_ids)


def _block(row: np.ndarray, b: int) -> tuple[int, int]:
    idx = np.flatnonzero(row)
    if idx.size == 0:
        return 0, 0
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    if hi - lo != idx.size:  # cannot happen with _encode_padded; guards a future change
        raise ConfigError(f"teacher attention mask of row {b} has holes")
    return lo, hi
