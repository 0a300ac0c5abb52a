"""Test helpers for stages, public so users can check their own stages the same way.

``MotoS3`` starts moto's S3 server on 127.0.0.1 (tests and benchmarks point s3fs at it through
``storage_options``; needs ``moto[server]``). ``check_resume(make_stage)`` runs a stage to the end, then restores a fresh copy from the state
saved before *every* item (including the initial state and states across epoch ends) and checks
that the continuation equals the rest of the original run; it also checks that states survive a
JSON round trip, keep the same top-level keys at every step, and stay under a size bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from .records import Document, PackedSequence


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
            except Exception:  # noqa: BLE001 - not up yet
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


def item_key(item: Any) -> Any:
    """A comparable fingerprint of what a stage yields."""
    if isinstance(item, PackedSequence):
        return (item.input_ids.tobytes(), item.length, json.dumps(item.ledger()), tuple(item.texts),
                item.source)
    if isinstance(item, Document):
        return (item.key, item.text, item.shard, item.offset)
    if isinstance(item, dict):
        out = []
        for k in sorted(item):
            v = item[k]
            if hasattr(v, "numpy"):
                v = v.numpy().tobytes()
            elif isinstance(v, np.ndarray):
                v = v.tobytes()
            else:
                v = json.dumps(v, sort_keys=True, default=str)
            out.append((k, v))
        return tuple(out)
    return item


def check_resume(
    make_stage: Callable[[], Any],
    *,
    max_state_bytes: int = 64 * 1024,
    every: int = 1,
) -> list[Any]:
    """Restore at every ``every``-th step and compare; returns the items of the full run."""
    ref = make_stage()
    states = [ref.state_dict()]
    items = []
    for item in ref:
        items.append(item_key(item))
        states.append(ref.state_dict())
    ref.close()
    keys = set(states[0])
    for i in range(0, len(states), every):
        state = states[i]
        blob = json.dumps(state)
        if json.loads(blob) != state:
            raise AssertionError(f"state at step {i} does not survive a JSON round trip")
        if len(blob) > max_state_bytes:
            raise AssertionError(f"state at step {i} is {len(blob)} bytes > {max_state_bytes}")
        if set(state) != keys:
            raise AssertionError(f"state keys changed at step {i}: {sorted(state)} != {sorted(keys)}")
        stage = make_stage()
        stage.load_state_dict(json.loads(blob))
        rest = [item_key(x) for x in stage]
        stage.close()
        if rest != items[i:]:
            first = next((j for j, (a, b) in enumerate(zip(rest, items[i:])) if a != b),
                         min(len(rest), len(items) - i))
            raise AssertionError(
                f"resume from step {i} diverges at item {i + first} "
                f"(got {len(rest)} items, expected {len(items) - i})"
            )
    return items
