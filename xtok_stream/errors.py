"""One error hierarchy. Every message names the URL, key or field and, where one exists, the
option that changes the behaviour."""

from __future__ import annotations


class XtokError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(XtokError, ValueError):
    """A pipeline config, CLI option or tokenizer name is wrong."""


class SourceError(XtokError, IOError):
    """A shard could not be listed, opened or read."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None):
        where = ", ".join(x for x in (f"url={url}" if url else "", f"key={key}" if key else "") if x)
        super().__init__(f"{message} ({where})" if where else message)
        self.url, self.key = url, key


class DecodeError(SourceError):
    """A sample's field is missing or cannot be decoded."""

    def __init__(self, message: str, *, url: str, key: str, field: str):
        super().__init__(f"{message}; field '{field}'", url=url, key=key)
        self.field = field


class StateError(XtokError, ValueError):
    """A saved state does not fit the stage or pipeline it is loaded into."""
