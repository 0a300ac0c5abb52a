"""The public API (``from xtok_stream import ...``) and the persisted names kept stable."""

from __future__ import annotations

import importlib
import subprocess
import sys

import xtok_stream


def test_all_is_sorted_and_every_name_resolves():
    assert xtok_stream.__all__ == sorted(xtok_stream.__all__)
    assert set(xtok_stream.__all__) == set(xtok_stream._EXPORTS)
    for name in xtok_stream.__all__:
        value = getattr(xtok_stream, name)
        assert value is getattr(importlib.import_module(xtok_stream._EXPORTS[name]), name)
    for name in ("Loader", "load_config", "Aligner", "MultiAligner", "PipelineConfig",
                 "save_state", "load_state", "check_resume"):
        assert name in xtok_stream.__all__


def test_import_is_lazy_and_unknown_names_fail():
    code = ("import sys, xtok_stream; assert 'torch' not in sys.modules, 'torch'; "
            "from xtok_stream import load_config; assert 'torch' not in sys.modules; "
            "from xtok_stream import Loader; assert 'torch' in sys.modules\n"
            "try:\n    xtok_stream.Nope\nexcept AttributeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "has no attribute 'Nope'" in out.stdout


def test_unaligned_reasons_keep_their_values():
    from xtok_stream import UnalignedReason

    assert {r.name: r.value for r in UnalignedReason} == {
        "SPECIAL_UNPAIRED": 1, "TRUNCATED_TAIL": 2, "UNK": 3, "PAD": 4}
