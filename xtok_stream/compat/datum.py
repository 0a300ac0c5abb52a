"""Student side of the NeMo-RL drop-in: samples in, the padded student batch out.

Two sample forms (one per batch):

* **DatumSpec** (what NeMo-RL's datasets, e.g. ``kd_data_processor``, produce): ``message_log``
  (messages with ``role``, ``content``, ``token_ids`` 1-D int tensor, optional
  ``token_loss_mask``), ``length``, ``extra_env_info`` (dict or None; ``raw_text`` lives here),
  ``loss_multiplier``, ``idx``, optional ``task_name``/``stop_strings``; other keys are ignored,
  as upstream's ``rl_collate_fn`` does. Handled as upstream: ``rl_collate_fn``, a message without
  ``token_loss_mask`` gets ones for ``assistant`` and zeros otherwise, then the messages are
  flattened and padded (``token_ids`` with ``pad_token_id``, other tensors with 0) to a multiple
  of ``make_sequence_length_divisible_by``::

      user [5 6 7] + assistant [8 9], pad 0, divisible by 4
      input_ids  [5 6 7 8 9 0 0 0]   token_mask [0 0 0 1 1 0 0 0]   input_lengths 5

* **simple**: ``{"input_ids", "raw_text"?, "sample_mask" | "loss_multiplier"?, "token_mask"?}``.
  ``loss_mask`` (the chat mode's name, ``chat/pack.py``) is read as ``token_mask``, so a chat
  row's loss covers its assistant turns only; :func:`stream_samples` turns an xtok_stream batch
  into such samples.

Ids are checked, not cast: float ids (which ``torch.as_tensor(..., int64)`` would truncate) raise
:class:`SampleTypeError`, negative ids :class:`SampleValueError`, both naming ``batch[i]`` and the
field. Input dicts are never modified (upstream writes ``token_loss_mask`` into them).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from ..errors import DecodeError, SampleTypeError, SampleValueError
from .batched import BatchedDict

WHERE = "collate_fn"
_DATUM_REQUIRED = ("message_log", "length", "extra_env_info", "loss_multiplier", "idx")
_MESSAGE_REQUIRED = ("role", "content", "token_ids")


def int_ids(value: Any, key: str, field: str) -> torch.Tensor:
    """``value`` (list, numpy array or tensor of non-negative integers) as 1-D int64."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:  # torch.tensor([]) is float32: nothing to truncate, so accept it
            value = value.to(torch.int64)
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            raise SampleTypeError(f"ids must be integers, got a {value.dtype} tensor (float ids "
                                  f"would be truncated)", key=key, field=field)
        ids = value.to(torch.int64)
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SampleTypeError(f"ids must be a list of integers: {exc}", key=key,
                                  field=field) from exc
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise SampleTypeError(
                f"ids must be integers, got {arr.dtype} values such as "
                f"{arr.reshape(-1)[:1].tolist()} (float ids would be truncated; integers must "
                f"fit int64)", key=key, field=field)
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise SampleValueError("ids exceed int64", key=key, field=field)
        ids = torch.from_numpy(np.ascontiguousarray(arr, np.int64))
    if ids.ndim != 1:
        raise SampleValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}", key=key,
                               field=field)
    if ids.numel() and int(ids.min()) < 0:
        raise SampleValueError(f"ids must be >= 0, got {int(ids.min())}", key=key, field=field)
    return ids


def _mask(value: Any, n: int, key: str, field: str) -> torch.Tensor:
    m = torch.as_tensor(value)
    if m.shape != (n,):
        raise SampleValueError(f"{field} has shape {tuple(m.shape)}, token ids ({n},)", key=key,
                               field=field)
    if m.dtype == torch.bool:
        m = m.to(torch.int64)
    return m


# -- simple form ---------------------------------------------------------------------------------
def is_datum(sample: Any) -> bool:
    return isinstance(sample, dict) and "message_log" in sample


def simple_rows(data_batch: list) -> tuple[list, list, list, list | None]:
    """``(ids, masks or None, multipliers, texts or None)`` of simple samples."""
    rows, masks, mult = [], [], []
    for i, sample in enumerate(data_batch):
        key = f"batch[{i}]"
        if is_datum(sample):
            raise DecodeError("a batch mixes simple samples (input_ids) and DatumSpecs "
                              "(message_log); use one form per batch", url=WHERE, key=key,
                              field="message_log")
        if not isinstance(sample, dict) or "input_ids" not in sample:
            raise DecodeError("sample has neither input_ids nor message_log (a NeMo-RL "
                              "DatumSpec)", url=WHERE, key=key, field="input_ids")
        rows.append(int_ids(sample["input_ids"], key, "input_ids"))
        tm, field = sample.get("token_mask"), "token_mask"
        if sample.get("loss_mask") is not None:  # chat rows: the mask over assistant turns
            if tm is not None:
                raise SampleValueError("has both token_mask and loss_mask (loss_mask is read as "
                                       "token_mask); give one", key=key, field="loss_mask")
            tm, field = sample["loss_mask"], "loss_mask"
        masks.append(None if tm is None else _mask(tm, len(rows[-1]), key, field))
        m = sample.get("sample_mask", sample.get("loss_multiplier", 1.0))
        try:
            mult.append(float(m))
        except (TypeError, ValueError) as exc:
            raise SampleTypeError(f"must be a number, got {m!r}", key=key,
                                  field="sample_mask") from exc
    texts = [s.get("raw_text") for s in data_batch]
    return rows, masks, mult, texts if all(isinstance(t, str) for t in texts) else None


def stream_samples(batch: dict) -> list[dict]:
    """An xtok_stream batch (``stages/batch.py``) -> the collator's simple samples: each real
    row's tokens, with ``token_mask`` = its chat ``loss_mask`` (absent in text mode: every token
    counts) and ``sample_mask``. Padding rows (``sample_mask`` 0, no tokens) are left out."""
    out = []
    lengths, rows = batch["input_lengths"].tolist(), batch["sample_mask"].tolist()
    for b, (n, m) in enumerate(zip(lengths, rows)):
        if m == 0 or n == 0:
            continue
        sample = {"input_ids": batch["input_ids"][b, :n], "sample_mask": float(m)}
        if batch.get("loss_mask") is not None:
            sample["loss_mask"] = batch["loss_mask"][b, :n]
        out.append(sample)
    return out


def collate_simple(data_batch: list, pad_token_id: int, divisible_by: int,
                   bdict: type = BatchedDict) -> tuple[Any, list | None]:
    """The student batch of simple samples (``bdict`` of ``input_ids``, ``input_lengths``,
    ``token_mask``, ``sample_mask`` = ``loss_multiplier``) and their texts (or None)."""
    rows, masks, mult, texts = simple_rows(data_batch)
    lengths = [len(r) for r in rows]
    width = -(-max(lengths) // divisible_by) * divisible_by
    batch = len(rows)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.int64)
    mask_dtype = torch.int64
    for m in masks:
        if m is not None:
            mask_dtype = torch.promote_types(mask_dtype, m.dtype)
    token_mask = torch.zeros((batch, width), dtype=mask_dtype)
    for b, (r, m) in enumerate(zip(rows, masks)):
        input_ids[b, : len(r)] = r
        token_mask[b, : len(r)] = 1 if m is None else m
    sample_mask = torch.tensor(mult, dtype=torch.float32)
    out = bdict({
        "input_ids": input_ids,
        "input_lengths": torch.tensor(lengths, dtype=torch.int32),
        "token_mask": token_mask,
        "sample_mask": sample_mask,
        "loss_multiplier": sample_mask,
    })
    return out, texts


# -- DatumSpec form ------------------------------------------------------------------------------
def prepare_datums(data_batch: list) -> tuple[list[dict], list[str] | None]:
    """Checked shallow copies of DatumSpecs (messages copied too, ``token_ids`` as int64 and the
    role-based ``token_loss_mask`` filled in) and the texts (``extra_env_info["raw_text"]`` when
    every sample has one, else None)."""
    out, texts = [], []
    for i, d in enumerate(data_batch):
        key = f"batch[{i}]"
        if not is_datum(d):
            raise DecodeError("a batch mixes DatumSpecs (message_log) and simple samples "
                              "(input_ids); use one form per batch", url=WHERE, key=key,
                              field="message_log")
        missing = [k for k in _DATUM_REQUIRED if k not in d]
        if missing:
            raise DecodeError(f"DatumSpec lacks {missing} (NeMo-RL's rl_collate_fn needs them)",
                              url=WHERE, key=key, field=missing[0])
        if not isinstance(d["message_log"], list) or not d["message_log"]:
            raise SampleTypeError("message_log must be a non-empty list of messages", key=key,
                                  field="message_log")
        msgs = []
        for j, msg in enumerate(d["message_log"]):
            mkey = f"{key}.message_log[{j}]"
            if not isinstance(msg, dict) or any(k not in msg for k in _MESSAGE_REQUIRED):
                raise DecodeError(f"a message needs {list(_MESSAGE_REQUIRED)}", url=WHERE,
                                  key=mkey, field="message_log")
            if not isinstance(msg["role"], str) or not isinstance(msg["content"], str):
                raise SampleTypeError("role and content must be strings", key=mkey,
                                      field="role/content")
            msg = dict(msg)
            msg["token_ids"] = int_ids(msg["token_ids"], mkey, "token_ids")
            n = len(msg["token_ids"])
            if msg.get("token_loss_mask") is None:
                fill = torch.ones_like if msg["role"] == "assistant" else torch.zeros_like
                msg["token_loss_mask"] = fill(msg["token_ids"])
            else:
                msg["token_loss_mask"] = _mask(msg["token_loss_mask"], n, mkey, "token_loss_mask")
            msgs.append(msg)
        for name, kind in (("length", Integral), ("idx", Integral), ("loss_multiplier", Real)):
            v = d[name]
            v = v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v
            if isinstance(v, bool) or not isinstance(v, kind):
                raise SampleTypeError(f"must be {'an integer' if kind is Integral else 'a number'}"
                                      f", got {v!r}", key=key, field=name)
        info = d["extra_env_info"]
        if info is not None and not isinstance(info, dict):
            raise SampleTypeError(f"extra_env_info must be a dict or None, got "
                                  f"{type(info).__name__}", key=key, field="extra_env_info")
        texts.append(info.get("raw_text") if info else None)
        out.append({**d, "message_log": msgs})
    return out, texts if all(isinstance(t, str) for t in texts) else None


def rl_collate(datums: list[dict]) -> BatchedDict:
    """NeMo-RL's ``rl_collate_fn``: the same keys, built the same way (``torch.tensor`` of the
    Python values, so ``length`` is int64 and a float ``loss_multiplier`` float32)."""
    length = torch.tensor([d["length"] for d in datums])
    return BatchedDict(
        message_log=[d["message_log"] for d in datums],
        length=length,
        loss_multiplier=torch.tensor([d["loss_multiplier"] for d in datums]),
        extra_env_info=[d["extra_env_info"] for d in datums],
        task_name=[d.get("task_name") for d in datums],
        idx=[d["idx"] for d in datums],
        batch_max_length=torch.ones_like(length) * length.max(),
        stop_strings=[d.get("stop_strings") for d in datums],
    )


def flatten(message_logs: list[list[dict]], pad_token_id: int,
            divisible_by: int) -> tuple[BatchedDict, torch.Tensor]:
    """NeMo-RL's ``batched_message_log_to_flat_message``: per sample, tensors of all messages
    concatenated and other values listed; tensors then right-padded (``token_ids`` with
    ``pad_token_id``, others with 0) to the longest row rounded up to ``divisible_by``.
    Returns ``(flat, input_lengths int32 [B])``."""
    flat = []
    for log in message_logs:
        keys = list(dict.fromkeys(k for m in log for k in m))
        row = {}
        for k in keys:
            vals = [m[k] for m in log if k in m]
            row[k] = torch.cat(vals) if isinstance(vals[0], torch.Tensor) else vals
        flat.append(row)
    lengths = torch.tensor([len(r["token_ids"]) for r in flat], dtype=torch.int32)
    width = -(-int(lengths.max()) // divisible_by) * divisible_by
    out = BatchedDict()
    for k in dict.fromkeys(k for r in flat for k in r):
        vals = [r.get(k) for r in flat]
        if not isinstance(vals[0], torch.Tensor):
            out[k] = vals
            continue
        # A sample lacking the key gets an empty row, as upstream (e.g. logprobs not yet filled).
        vals = [vals[0].new_zeros(0) if v is None else v for v in vals]
        if any(not isinstance(v, torch.Tensor) for v in vals):
            bad = next(i for i, v in enumerate(vals) if not isinstance(v, torch.Tensor))
            raise SampleValueError(f"message key '{k}' is a tensor in batch[0] but not here",
                                   key=f"batch[{bad}]", field=k)
        pad = pad_token_id if k == "token_ids" else 0
        dtype = vals[0].dtype
        for v in vals[1:]:
            dtype = torch.promote_types(dtype, v.dtype)
        t = torch.full((len(vals), width), pad, dtype=dtype)
        for b, v in enumerate(vals):
            t[b, : len(v)] = v
        out[k] = t
    return out, lengths
