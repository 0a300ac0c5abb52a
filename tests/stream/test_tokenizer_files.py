"""Tokenizers are fingerprinted by their files' bytes, without being built (the loader does it at
startup), and a folder holding only slow files is converted once, then loaded from the cache."""

from __future__ import annotations

import json
import shutil

from xtok_stream.tokenizers import _package_dir, load_tokenizer, tokenizer_sha256


def _slow_folder(path):
    """A SentencePiece-only folder (mistral-v3's tokenizer.model): no tokenizer.json."""
    path.mkdir()
    model = _package_dir("mistral_common") / "data" / "mistral_instruct_tokenizer_240323.model.v3"
    shutil.copy(model, path / "tokenizer.model")
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    (path / "model.safetensors").write_bytes(b"weights are not tokenizer files")
    return path


def test_fingerprint_reads_files_and_builds_nothing(tmp_path):
    folder = _slow_folder(tmp_path / "tok")
    before = load_tokenizer.cache_info().currsize
    a = tokenizer_sha256(str(folder))
    assert load_tokenizer.cache_info().currsize == before  # nothing was loaded
    (folder / "model.safetensors").write_bytes(b"other weights")
    assert tokenizer_sha256(str(folder)) == a  # only tokenizer files count
    cfg = folder / "tokenizer_config.json"
    cfg.write_text(cfg.read_text().replace("}", ', "model_max_length": 7}'))
    assert tokenizer_sha256(str(folder)) != a  # rewritten in place: another hash


def test_a_slow_folder_is_converted_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XTOK_CACHE", str(tmp_path / "cache"))
    folder = _slow_folder(tmp_path / "tok")
    spec = str(folder)
    first = load_tokenizer(spec)
    converted = tmp_path / "cache" / "converted" / tokenizer_sha256(spec)
    assert (converted / "tokenizer.json").exists()
    load_tokenizer.cache_clear()
    again = load_tokenizer(spec)
    assert again.name_or_path == str(converted)  # loaded from the cache, not converted again
    text = "Grüße, 世界! def f(x): return x"
    assert again(text)["input_ids"] == first(text)["input_ids"]
    load_tokenizer.cache_clear()
