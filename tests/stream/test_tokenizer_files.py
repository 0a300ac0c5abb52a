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
    load_tokenizer.cache_clear()
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


FAST_LOAD_TEXT = "Grüße, 世界! <s>[INST] def f(x): return x [/INST]</s><|endoftext|><|im_start|>"


def _same_tokenizer(a, b, *, same_class=True):
    assert type(a) is type(b) or not same_class
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert {i: t.__getstate__() for i, t in a.added_tokens_decoder.items()} == {
        i: t.__getstate__() for i, t in b.added_tokens_decoder.items()}
    assert a.special_tokens_map == b.special_tokens_map
    assert (a.bos_token_id, a.eos_token_id, a.pad_token_id, a.unk_token_id) == (
        b.bos_token_id, b.eos_token_id, b.pad_token_id, b.unk_token_id)
    assert a.chat_template == b.chat_template
    assert (a.padding_side, a.truncation_side, a.model_max_length) == (
        b.padding_side, b.truncation_side, b.model_max_length)
    assert a.get_vocab() == b.get_vocab()
    for text in (FAST_LOAD_TEXT, "", " ", "  two\n\nlines\t", "a"):
        for special in (True, False):
            ea = a(text, add_special_tokens=special, return_offsets_mapping=True)
            eb = b(text, add_special_tokens=special, return_offsets_mapping=True)
            assert (ea["input_ids"], ea["offset_mapping"]) == (eb["input_ids"], eb["offset_mapping"])
            for skip in (True, False):
                assert (a.decode(ea["input_ids"], skip_special_tokens=skip)
                        == b.decode(ea["input_ids"], skip_special_tokens=skip))


def test_built_folders_list_added_tokens_and_load_the_same(tmp_path, monkeypatch):
    """Every packaged build writes ``added_tokens_decoder`` (so transformers skips its Python parse
    of tokenizer.json), and the tokenizer it loads equals the one loaded without that key."""
    from transformers import AutoTokenizer

    from xtok_stream.tokenizers import PACKAGED, packaged_tokenizer_dir

    monkeypatch.setenv("XTOK_CACHE", str(tmp_path / "cache"))
    load_tokenizer.cache_clear()
    for name in PACKAGED:
        folder = packaged_tokenizer_dir(name)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        assert config["added_tokens_decoder"], name
        legacy = tmp_path / f"legacy-{name}"
        shutil.copytree(folder, legacy)
        del config["added_tokens_decoder"]
        (legacy / "tokenizer_config.json").write_text(json.dumps(config))
        loaded = load_tokenizer(f"pkg:{name}")  # by its class, without AutoTokenizer
        _same_tokenizer(loaded, AutoTokenizer.from_pretrained(str(folder)))
        _same_tokenizer(loaded, AutoTokenizer.from_pretrained(str(legacy)))
    load_tokenizer.cache_clear()


def test_mistral_saved_as_the_generic_fast_class_equals_llama_tokenizer(tmp_path, monkeypatch):
    """pkg:mistral-v3 is saved as ``TokenizersBackend`` (it then loads without AutoTokenizer);
    it must behave as the ``LlamaTokenizer`` that transformers builds from the .model file."""
    monkeypatch.setenv("XTOK_CACHE", str(tmp_path / "cache"))
    load_tokenizer.cache_clear()
    llama = load_tokenizer(str(_slow_folder(tmp_path / "tok")))
    assert type(llama).__name__ == "LlamaTokenizer"
    _same_tokenizer(load_tokenizer("pkg:mistral-v3"), llama, same_class=False)
    load_tokenizer.cache_clear()


def test_a_converted_folder_lists_added_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("XTOK_CACHE", str(tmp_path / "cache"))
    load_tokenizer.cache_clear()
    spec = str(_slow_folder(tmp_path / "tok"))
    first = load_tokenizer(spec)
    converted = tmp_path / "cache" / "converted" / tokenizer_sha256(spec)
    config = json.loads((converted / "tokenizer_config.json").read_text())
    assert "</s>" in [t["content"] for t in config["added_tokens_decoder"].values()]
    load_tokenizer.cache_clear()
    _same_tokenizer(load_tokenizer(spec), first)
    load_tokenizer.cache_clear()
