"""Test helpers for stages, public so users can check their own stages the same way.

``MotoS3`` starts moto's S3 server on 127.0.0.1 (tests and benchmarks point s3fs at it through
``storage_options``; needs ``moto[server]``). ``check_resume(make_stage)`` runs a stage to the
end, then restores a fresh copy from the state
saved before *every* item (including the initial state and states across epoch ends) and checks
that the continuation equals the rest of the original run, comparing items through
:func:`canonical` (every field, tensors by dtype, shape and bytes). It also checks that states
survive a JSON round trip, keep the same nested key/type shape at every step, come back equal
from a restored stage, and stay under a size bound.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class MotoS3:
    """moto's S3 server in a child process on 127.0.0.1 (``start``/``stop`` can be called again
    to simulate an outage; the buckets live in the process and are lost on ``stop``)."""

    def __init__(self, port: int | None = None):
        import socket

        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self) -> MotoS3:
        import os
        import subprocess
        import sys
        import time
        import urllib.request

        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1)
                return self
            except Exception:  # not up yet
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not start on {self.endpoint}")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def storage_options(self) -> dict:
        return {"endpoint_url": self.endpoint, "key": "testing", "secret": "testing",
                "client_kwargs": {"region_name": "us-east-1"}}


def canonical(item: Any) -> Any:
    """A comparable, hashable form of anything a stage yields, seeing every field: arrays and
    tensors by dtype, shape and bytes (never through ``str()``, which abbreviates long tensors),
    dataclasses field by field (``PackedSequence.extras`` included), mappings and sequences
    recursively."""
    if hasattr(item, "detach") and hasattr(item, "numpy"):  # torch.Tensor
        item = item.detach().cpu().contiguous().numpy()
    if isinstance(item, np.ndarray):
        return ("ndarray", str(item.dtype), item.shape, np.ascontiguousarray(item).tobytes())
    if isinstance(item, np.generic):
        return ("scalar", str(item.dtype), item.tobytes())
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return (type(item).__name__,) + tuple(
            (f.name, canonical(getattr(item, f.name))) for f in dataclasses.fields(item))
    if isinstance(item, Mapping):
        return ("map",) + tuple(sorted((str(k), canonical(v)) for k, v in item.items()))
    if isinstance(item, (list, tuple)):
        return (type(item).__name__,) + tuple(canonical(v) for v in item)
    if isinstance(item, (str, bytes, int, float, bool, type(None))):
        return (type(item).__name__, item)
    raise TypeError(f"check_resume cannot compare a {type(item).__name__}; add it to canonical()")


item_key = canonical  # the former name


def state_shape(state: Any) -> Any:
    """The nested key/type skeleton of a state: must not change from step to step (grain's
    check), so a state never grows new fields or swaps a field's type mid-run. List lengths are
    not part of it (a shuffle buffer fills), the shape of their elements is."""
    if isinstance(state, Mapping):
        return {k: state_shape(v) for k, v in state.items()}
    if isinstance(state, list):
        return ["list", sorted({json.dumps(state_shape(v), sort_keys=True) for v in state})]
    return type(state).__name__


def _first_diff(a: list, b: list) -> int:
    return next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check_resume(
    make_stage: Callable[[], Any],
    *,
    max_state_bytes: int = 64 * 1024,
    every: int = 1,
) -> list[Any]:
    """Restore at every ``every``-th step and compare; returns the (canonical) items of the
    full run.

    Checks per restored step: the state survives a JSON round trip, stays under
    ``max_state_bytes``, has the same nested key/type shape as at step 0 (a list empty at step 0
    may fill), a freshly restored stage
    reports exactly the state it was given, and its continuation equals the rest of the run.
    """
    ref = make_stage()
    states = [ref.state_dict()]
    items = []
    for item in ref:
        items.append(canonical(item))
        states.append(ref.state_dict())
    ref.close()
    shape0 = state_shape(states[0])
    for i in range(0, len(states), every):
        state = states[i]
        blob = json.dumps(state)
        if json.loads(blob) != state:
            raise AssertionError(f"state at step {i} does not survive a JSON round trip")
        if len(blob) > max_state_bytes:
            raise AssertionError(f"state at step {i} is {len(blob)} bytes > {max_state_bytes}")
        shape = state_shape(state)
        if shape != shape0 and not _grows_only(shape0, shape):
            raise AssertionError(f"state shape changed at step {i}: "
                                 f"{shape} != {shape0}")
        stage = make_stage()
        stage.load_state_dict(json.loads(blob))
        restored = stage.state_dict()
        if restored != state:
            raise AssertionError(f"restored state at step {i} differs from the saved one: "
                                 f"{json.dumps(restored)[:300]} != {blob[:300]}")
        rest = [canonical(x) for x in stage]
        stage.close()
        if rest != items[i:]:
            raise AssertionError(
                f"resume from step {i} diverges at item {i + _first_diff(rest, items[i:])} "
                f"(got {len(rest)} items, expected {len(items) - i})"
            )
    return items


def _grows_only(a: Any, b: Any) -> bool:
    """``b`` equals ``a`` except where ``a`` has an empty list (a buffer that was empty at step
    0) and ``b`` the same list with elements."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(a[k] == b[k] or _grows_only(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return a[1] == []
    return False
