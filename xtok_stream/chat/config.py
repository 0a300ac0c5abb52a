"""The pipeline's ``chat:`` block (absent = text mode)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
