"""Library errors keep their type and fields across processes (pickle, DataLoader workers) and
the CLI reports them as one ``error:`` line, never a traceback."""

import pickle
import subprocess
import sys

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from xtok_stream.config import load_config
from xtok_stream.errors import (
    ConfigError,
    DecodeError,
    SampleTypeError,
    SampleValueError,
    SourceError,
    StateError,
    XtokError,
)
from xtok_stream.io.shards import encode_shard
from xtok_stream.io.tar import CorruptShardError
from xtok_stream.loader import Loader

text = st.text(min_size=0, max_size=40)
opt = st.none() | st.text(min_size=1, max_size=20)


@given(msg=text, url=opt, key=opt, field=opt)
def test_errors_pickle_with_fields_and_message(msg, url, key, field):
    for exc in (SourceError(msg, url=url, key=key),
                DecodeError(msg, url=url, key=key, field=field),
                CorruptShardError(msg, url=url, at=7), ConfigError(msg), StateError(msg),
                SampleTypeError(msg, key=key, field=field),
                SampleValueError(msg, url=url, key=key, field=field)):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
        assert back.__dict__ == exc.__dict__


@pytest.mark.parametrize("cls", [SourceError, DecodeError, CorruptShardError, ConfigError,
                                 StateError, SampleTypeError, SampleValueError])
def test_constructible_from_a_message_alone(cls):
    # what torch's ExceptionWrapper.reraise does: type(message)
    assert str(cls("Caught it in DataLoader worker 1")) == "Caught it in DataLoader worker 1"


def test_sample_errors_live_in_the_one_hierarchy():
    """compat's sample errors are errors.py's (old import path kept), still TypeError/ValueError."""
    from xtok_stream.compat import datum

    assert datum.SampleTypeError is SampleTypeError and datum.SampleValueError is SampleValueError
    assert issubclass(SampleTypeError, (DecodeError, TypeError))
    assert issubclass(SampleValueError, (DecodeError, ValueError))
    e = SampleValueError("ids must be >= 0", key="batch[2]", field="input_ids")
    assert (e.url, e.key, e.field) == ("collate_fn", "batch[2]", "input_ids")
    assert "field 'input_ids'" in str(e) and "key=batch[2]" in str(e)


@pytest.fixture()
def bad_pipeline(tmp_path, local_shards):
    shards, _ = local_shards
    data, _ = encode_shard([{"__key__": "nofield", "json": b"{}"}])
    (tmp_path / "zz-bad.tar").write_bytes(data)
    return {"source": {"urls": [*shards, str(tmp_path / "zz-bad.tar")]},
            "student": {"tokenizer": "pkg:qwen2", "seq_len": 128}, "num_lanes": 4,
            "batch_size": 2, "shuffle": {"shards": False}}


def test_worker_errors_reach_the_trainer_with_their_type_and_fields(bad_pipeline):
    loader = Loader(load_config({**bad_pipeline, "num_workers": 2}))
    with pytest.raises(DecodeError) as e:
        for _ in loader:
            pass
    assert e.value.field == "txt" and e.value.key == "nofield"
    assert e.value.url.endswith("zz-bad.tar")
    assert "missing_field: skip" in str(e.value)


def test_cli_prints_one_error_line_not_a_traceback(bad_pipeline, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**bad_pipeline, "num_workers": 2}))
    res = subprocess.run([sys.executable, "-m", "xtok_stream", "run", str(path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "xtok run: error: " in res.stderr and "zz-bad.tar" in res.stderr
    assert issubclass(DecodeError, XtokError)
