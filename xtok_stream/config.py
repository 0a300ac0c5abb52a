"""Pipeline config: frozen pydantic models, YAML loading and ``--set a.b=value`` overrides.

Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.
Everything shapes the stream (and is fingerprinted into the loader state, so a resume under a
different value is refused) unless it is declared in :data:`TRANSPORT_ONLY`: a deny-list, so a
field added later is fingerprinted by default.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from .errors import ConfigError
from .state import fingerprint

_POLICIES = ("corrupt_shard", "missing_field", "invalid_utf8", "empty_document", "huge_document",
             "odd_member")

TRANSPORT_ONLY: frozenset[str] = frozenset({
    # how bytes are fetched, not which: credentials, endpoints, retries
    "source.storage_options",
    "source.retry",
    # how batches reach the trainer: the stream is the same for any worker count (lanes)
    "num_workers",
    "prefetch_factor",
    "persistent_workers",
    "pin_memory",
    # a limit checked at config load, not a stream parameter
    "shuffle.state_budget",
    # bad-data policies decide what happens *at* bad data, not what was consumed before it, so
    # following an error's advice (error -> skip) at resume keeps the checkpoint (issue 10)
    *(f"source.on_bad_data.{p}" for p in _POLICIES),
    # a mixture's sources: transport as above; weights may change at resume (stages/mix.py)
    "sources.*.storage_options",
    "sources.*.retry",
    "sources.*.weight",
    *(f"sources.*.on_bad_data.{p}" for p in _POLICIES),
})
"""Dotted config paths (``*`` matches a list index) that never change which tokens come out in
which order: the one place that declares them. A path here needs a test that the stream is
unchanged under another value (tests/stream/test_fingerprint.py walks every field)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Policy = Literal["error", "skip"]


class BadDataConfig(_Frozen):
    """What to do with bad data. ``error`` (default) stops with a message naming shard, member
    and offset; ``skip`` drops it, counts it in the lane's state and the metrics (a lane is read
    by one consumer, so every rank sees the same decisions)."""

    corrupt_shard: Policy = "error"
    """A corrupt or truncated tar: ``skip`` drops the rest of that shard."""
    missing_field: Policy = "error"
    invalid_utf8: Policy = "error"
    empty_document: Policy = "error"
    huge_document: Literal["error", "skip", "split"] = "error"
    """A text member over ``max_document_bytes``: ``split`` reads it in windows of that size
    (cut at a line or space) that pack as consecutive parts of one document, so memory stays
    bounded."""
    max_document_bytes: int = Field(16 << 20, ge=64)
    odd_member: Policy = "error"
    """A tar member that is a symlink or hardlink, has no extension, or repeats a sample's
    extension: ``skip`` drops it (keeping the first of duplicates) and counts it."""


class RetryConfig(_Frozen):
    """Transient object-store faults: exponential backoff with jitter, resumed at the byte."""

    max_attempts: int = Field(8, gt=0)
    base_delay: float = Field(0.05, ge=0)
    max_delay: float = Field(5.0, ge=0)
    read_timeout: float = Field(60.0, gt=0)
    """Seconds an S3 request or body read may go without an answer before it counts as a
    transient fault (reopen at the byte, back off): a frozen endpoint cannot stall a rank."""


class SourceConfig(_Frozen):
    urls: list[str] = Field(min_length=1)
    """Shard URLs: s3://, gs://, file:// or plain paths; brace ranges, globs or prefixes."""
    storage_options: dict[str, Any] = Field(default_factory=dict)
    """Passed to fsspec (endpoint_url, key, secret, anon, ...)."""
    text_field: str = "txt"
    """Member extension holding the UTF-8 text (``doc-0001.txt`` -> ``txt``)."""
    format: Literal["tar", "arrow", "precomputed"] = "tar"
    """``tar``: WebDataset shards; ``arrow``: Parquet/Arrow files read in place
    (``stages/read_arrow.py``); ``precomputed``: shards written by ``xtok convert --precompute``
    holding packed sequences with every teacher's tokens and alignment (``precompute/``)."""
    val_split: float = Field(0.0, ge=0.0, lt=1.0)
    """arrow: share of rows held out for validation (the reference's ``val_split``), chosen by
    ``seed``; ``split`` picks which part this pipeline reads."""
    split: Literal["train", "validation"] = "train"
    on_bad_data: BadDataConfig = Field(default_factory=BadDataConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @field_validator("urls", mode="before")
    @classmethod
    def _one_url(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


# -- mixtures (issue 14): several sources blended by weight, see stages/mix.py ----------------
class MixSourceConfig(SourceConfig):
    """One entry of ``sources:``: a source plus its share of the blend and its end policy."""

    name: str | None = None
    """Key in metrics and error messages; default ``source{i}``."""
    weight: float = Field(gt=0)
    """Share of the lane's sequences (normalised over the sources still running). Not in the
    fingerprint: a changed weight at resume starts a new blend segment (see stages/mix.py)."""
    end: Literal["repeat", "stop"] = "stop"
    """At its end: ``repeat`` starts its next epoch (shards reshuffled by (seed, epoch)),
    ``stop`` leaves the blend after ``epochs`` passes (the others share its weight)."""


class MixtureConfig(_Frozen):
    """When a mixture ends: ``all_exhausted`` when every ``stop`` source has ended (never if all
    sources repeat), ``first_exhausted`` when any source ends, ``epochs`` after ``epochs``
    passes of the source named ``source``."""

    end: Literal["all_exhausted", "first_exhausted", "epochs"] = "all_exhausted"
    source: str | None = None
    epochs: int | None = Field(None, gt=0)


class StudentConfig(_Frozen):
    tokenizer: str
    """HF hub name, local folder, or pkg:qwen2 / pkg:deepseek-v4 / pkg:mistral-v3."""
    seq_len: int = Field(4096, gt=1)


class TeacherConfig(_Frozen):
    """One teacher: the reference's ``TeacherCTSpec`` fields (``max_teacher_len`` is accepted as
    an alias of ``max_len``) plus an optional ``name`` (the key of its tensors in the batch)."""

    tokenizer: str
    name: str | None = None
    max_len: int | None = Field(None, gt=0, validation_alias=AliasChoices("max_len", "max_teacher_len"))
    """Teacher tokens per row (truncation and padded width); default 2 x student.seq_len."""
    max_comb_len: int = Field(4, gt=0)
    exact_token_match_only: bool = False
    """COO form keeps only 1:1 chunks (the reference's filter)."""
    projection_matrix_path: str | None = None
    use_sparse_format: bool = False
    learnable: bool = False
    projection_matrix_multiplier: float = 1.0
    project_teacher_to_student: bool = False
    dp_chunk_size: int = Field(128, gt=0)
    """Accepted for compatibility with the reference's specs; the linear aligner needs no DP
    chunking."""

    @property
    def key(self) -> str:
        if self.name:
            return self.name
        return self.tokenizer.removeprefix("pkg:").rstrip("/").rsplit("/", 1)[-1]


class ShuffleConfig(_Frozen):
    shards: bool = True
    """Shuffle the shard order every epoch (a function of seed and epoch)."""
    buffer: int = Field(0, ge=0)
    """Sample-shuffle buffer per lane, in documents (0 = off). The state keeps re-fetch
    positions, not texts."""
    state_budget: int = Field(16 << 20, gt=0)
    """Bytes the buffers' positions may take in a saved loader state (``buffer x num_lanes``
    positions of ~24 bytes each); a config over it is refused at load."""


POSITION_BYTES = 24  # one re-fetch position in a saved state: "[12, 345, 1234567890], "


MISTRAL_COMMON = "mistral-common"


def template_file(value: str | None) -> Path | None:
    """The file a ``chat.templates`` entry names, or None (inline Jinja, ``mistral-common``,
    the tokenizer's own template, or a path that does not exist: the renderer reports that)."""
    if value is None or value == MISTRAL_COMMON or "{{" in value or "{%" in value:
        return None
    path = Path(value).expanduser()
    return path if path.is_file() else None


class ChatConfig(BaseModel):
    """The ``chat:`` block (absent = text mode): conversations, see docs/chat.md.

    A template given as a *file* is pinned by content: validation reads the file's sha256, and
    the dump (what the loader fingerprints and what travels between processes) writes such an
    entry as ``{"file": path, "sha256": ...}``. So a resume after the file was edited is refused
    naming ``chat.templates.NAME.sha256``, as tokenizers are pinned by content; loading a dump
    keeps the pinned digest (it is what was hashed, wherever the config is rebuilt)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages_field: str = "messages"
    """Tar member extension or Arrow column holding the JSON list of ``{role, content}``."""
    templates: dict[str, str] = Field(default_factory=dict)
    """Per model (``student`` or a teacher's name): inline Jinja, a path to a Jinja file, or
    ``mistral-common`` (mistral-common's instruct encoding, v3). Default: the tokenizer's own
    ``chat_template``."""
    overflow: Literal["split", "truncate"] = "split"
    """A conversation longer than ``seq_len``: ``split`` at message boundaries (a single message
    longer than ``seq_len`` is truncated), ``truncate`` keeps its first ``seq_len`` tokens. Cut
    tokens are counted in the pack state (``truncated_tokens``)."""
    mask_end_of_turn: bool = True
    """``loss_mask`` also covers the special token that ends an assistant turn."""
    strip_content: bool = False
    """Strip each content's surrounding whitespace before rendering (for templates that trim)."""

    _sha256: dict[str, str] = PrivateAttr(default_factory=dict)  # per template *file*

    @model_validator(mode="wrap")
    @classmethod
    def _pin_template_files(cls, data: Any, handler) -> ChatConfig:
        pinned: dict[str, str] = {}
        if isinstance(data, dict) and isinstance(data.get("templates"), dict):
            plain = {}
            for name, value in data["templates"].items():
                if isinstance(value, dict) and set(value) == {"file", "sha256"}:  # a dump
                    plain[name], pinned[name] = value["file"], value["sha256"]
                else:
                    plain[name] = value
            data = {**data, "templates": plain}
        model = handler(data)
        for name, value in model.templates.items():
            path = template_file(value)
            if name not in pinned and path is not None:
                pinned[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        model._sha256 = pinned
        return model

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        out = handler(self)
        if self._sha256 and isinstance(out.get("templates"), dict):
            out["templates"] = {n: {"file": v, "sha256": self._sha256[n]} if n in self._sha256
                                else v for n, v in out["templates"].items()}
        return out

    def template_sha256(self, name: str) -> str | None:
        """The pinned sha256 of model ``name``'s template file (None: not a file)."""
        return self._sha256.get(name)


class PipelineConfig(_Frozen):
    source: SourceConfig | None = None
    sources: list[MixSourceConfig] | None = Field(None, min_length=1)
    """A mixture (stages/mix.py); exactly one of ``source`` and ``sources``."""
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    student: StudentConfig
    teachers: list[TeacherConfig] = Field(default_factory=list)
    seed: int = 0
    epochs: int | None = Field(1, gt=0)
    """Passes over the data; null streams forever (0 or less would train on nothing: refused)."""
    batch_size: int = Field(8, gt=0)
    pad_to_multiple_of: int = Field(1, gt=0)
    num_lanes: int = Field(16, gt=0)
    """Virtual partitions, independent of world size and worker count: the packed sequences
    depend only on this, the seed and the data. Use at least world_size x num_workers."""
    shuffle: ShuffleConfig = Field(default_factory=ShuffleConfig)
    num_workers: int = Field(0, ge=0)
    prefetch_factor: int | None = Field(2, gt=0)
    persistent_workers: bool = False
    pin_memory: bool = False
    chat: ChatConfig | None = None
    """Conversations (``chat/``): samples hold ``messages``, each model renders its own chat
    template; absent = plain text."""

    @model_validator(mode="after")
    def _shuffle_state_fits(self) -> PipelineConfig:
        need = self.shuffle.buffer * self.num_lanes * POSITION_BYTES
        if need > self.shuffle.state_budget:
            raise ValueError(
                f"shuffle.buffer {self.shuffle.buffer} x num_lanes {self.num_lanes} keeps "
                f"~{need / 2**20:.1f} MiB of positions in every saved state, over "
                f"shuffle.state_budget {self.shuffle.state_budget / 2**20:.1f} MiB; lower "
                "shuffle.buffer or num_lanes, or raise shuffle.state_budget")
        return self

    @model_validator(mode="after")
    def _unique_teacher_names(self) -> PipelineConfig:
        keys = [t.key for t in self.teachers]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"teacher names must be unique, repeated: {dup}; set teachers[i].name")
        return self

    @model_validator(mode="after")
    def _one_source_kind(self) -> PipelineConfig:
        if (self.source is None) == (self.sources is None):
            raise ValueError("give exactly one of source (one source) and sources (a mixture)")
        if self.sources is None:
            if self.mixture != MixtureConfig():
                raise ValueError("mixture: needs sources: (a list), not source:")
            return self
        names = self.source_names
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sources need unique names, repeated: {dup}; set sources[i].name")
        m = self.mixture
        if m.end == "epochs":
            if m.source not in names or m.epochs is None:
                raise ValueError(f"mixture.end: epochs needs mixture.source (one of {names}) "
                                 f"and mixture.epochs, got source={m.source!r} epochs={m.epochs!r}")
        elif m.source is not None or m.epochs is not None:
            raise ValueError("mixture.source/mixture.epochs apply only to mixture.end: epochs")
        return self

    @property
    def source_names(self) -> list[str]:
        return [s.name or f"source{i}" for i, s in enumerate(self.sources or [])]

    @model_validator(mode="after")
    def _chat_template_keys(self) -> PipelineConfig:
        if self.chat is not None:
            known = {"student", *(t.key for t in self.teachers)}
            bad = sorted(set(self.chat.templates) - known)
            if bad:
                raise ValueError(f"chat.templates has keys {bad}; use 'student' or a teacher "
                                 f"name: {sorted(known)}")
        return self

    @property
    def sample_field(self) -> str:
        """The member/column the readers read: the messages in chat mode, else the text."""
        return self.chat.messages_field if self.chat is not None else self.source.text_field

    def teacher_max_len(self, teacher: TeacherConfig) -> int:
        """Teacher tokens kept per row: ``max_len``, default 2 x student.seq_len."""
        return teacher.max_len or 2 * self.student.seq_len

    def teacher_width(self, teacher: TeacherConfig) -> int:
        """Padded teacher row width: the max length rounded up to ``pad_to_multiple_of``."""
        n = self.teacher_max_len(teacher)
        m = self.pad_to_multiple_of
        return -(-n // m) * m

    def stream_shape(self) -> dict:
        """Every field but the :data:`TRANSPORT_ONLY` ones (fingerprinted into saved states).
        The URL lists can be long (1,000s of shards): states keep their hash only. A mixture's
        sources are keyed by name, so a diff names ``sources.NAME.field``."""
        tree = self.model_dump(mode="json")
        for path in TRANSPORT_ONLY:
            _drop(tree, path.split("."))
        if self.source is not None:
            tree["source"]["urls"] = fingerprint(list(self.source.urls))
        if self.sources is not None:
            tree["sources"] = {n: dict(d, urls=fingerprint(list(src.urls)))
                               for n, d, src in zip(self.source_names, tree["sources"],
                                                    self.sources)}
            tree["mixture"]["order"] = self.source_names
        return tree


def _drop(node: Any, parts: list[str]) -> None:
    """Remove the dotted path ``parts`` from a dumped config (``*`` = every list item)."""
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(node, list):
        for item in node:
            _drop(item, rest)
    elif isinstance(node, dict) and head in node:
        if rest:
            _drop(node[head], rest)
        else:
            del node[head]


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: ``*name`` references can expand a small file into gigabytes
    (nested aliases grow exponentially), and a pipeline config never needs them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML alias *{event.anchor} refused (aliases can expand a small "
                "file into gigabytes): write the value out in full", event.start_mark)
        return super().compose_node(parent, index)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: '{p}' is not a mapping")
        node = nxt
    node[parts[-1]] = value


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    out = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects dotted.key=value, got {item!r}")
        try:
            value = _yaml(raw)  # YAML typing: 8 -> int, null -> None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item}: invalid YAML value: {exc}") from exc
        out.append((key.strip(), value))
    return out


def load_config(
    source: str | Path | dict, overrides: list[str] | None = None
) -> PipelineConfig:
    """Load a pipeline from a YAML path or a dict, apply ``key=value`` overrides, validate."""
    if isinstance(source, dict):
        tree, where = dict(source), "<dict>"
    else:
        where = str(source)
        try:
            tree = _yaml(Path(source).read_text()) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"pipeline config not found: {where}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: invalid YAML: {exc}") from exc
    for key, value in parse_overrides(overrides):
        _set_dotted(tree, key, value)
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"{where}: invalid pipeline config:\n" + "\n".join(lines)) from exc
