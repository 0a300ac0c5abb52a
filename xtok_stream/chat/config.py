"""The pipeline's ``chat:`` block (absent = text mode).

A template given as a *file* is pinned by content: validation reads the file's sha256, and the
dump (what the loader fingerprints and what travels between processes) writes such an entry as
``{"file": path, "sha256": ...}``. So a resume after the file was edited is refused naming
``chat.templates.NAME.sha256``, as tokenizers are pinned by content; loading a dump keeps the
pinned digest (it is what was hashed, wherever the config is rebuilt).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_serializer, model_validator

MISTRAL_COMMON = "mistral-common"


def template_file(value: str | None) -> Path | None:
    """The file a ``chat.templates`` entry names, or None (inline Jinja, ``mistral-common``,
    the tokenizer's own template, or a path that does not exist: the renderer reports that)."""
    if value is None or value == MISTRAL_COMMON or "{{" in value or "{%" in value:
        return None
    path = Path(value).expanduser()
    return path if path.is_file() else None


class ChatConfig(BaseModel):
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
