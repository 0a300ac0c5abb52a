"""A mistyped local tokenizer path is refused at once as a missing folder; it is never sent to
the hub (which, offline, costs a minute of retries and then blames the network)."""

import pytest

from xtok_stream.errors import ConfigError
from xtok_stream.tokenizers import _missing_local_folder, load_tokenizer


@pytest.fixture()
def no_hub(monkeypatch):
    import transformers

    def hub(*args, **kwargs):
        raise AssertionError(f"sent to transformers/the hub: {args}")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", hub)


@pytest.mark.parametrize("spec", ["/no/such/tokenizer", "./tok-typo", "~/no-such-xtok-tok",
                                  "a/b/c", "tokenizers/qwen2-typo"])
def test_missing_local_folders_are_named_without_the_hub(spec, tmp_path, monkeypatch, no_hub):
    (tmp_path / "tokenizers").mkdir()
    monkeypatch.chdir(tmp_path)
    load_tokenizer.cache_clear()
    with pytest.raises(ConfigError, match="does not exist") as e:
        load_tokenizer(spec)
    assert spec in str(e.value) and "nearest existing folder" in str(e.value)


def test_a_file_is_not_a_tokenizer_folder(tmp_path, no_hub):
    (tmp_path / "tokenizer.json").write_text("{}")
    load_tokenizer.cache_clear()
    with pytest.raises(ConfigError, match="is a file"):
        load_tokenizer(str(tmp_path / "tokenizer.json"))


def test_hub_names_and_existing_folders_go_through(tmp_path):
    assert _missing_local_folder("Qwen/Qwen2-7B") is None
    assert _missing_local_folder("gpt2") is None
    assert _missing_local_folder(str(tmp_path)) is None
