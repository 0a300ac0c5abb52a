"""One error hierarchy. Every message names the URL, key or field and, where one exists, the
option that changes the behaviour.

Errors cross process boundaries (DataLoader workers, Ray tasks): each one is constructible from a
message alone (torch rebuilds a worker's exception as ``type(message)``) and pickles with its
fields (``url``, ``key``, ``field``, ...), message unchanged.
"""

from __future__ import annotations


def _rebuild(cls: type, args: tuple, fields: dict) -> XtokError:
    """Unpickle without calling ``__init__`` again (it would re-format the message)."""
    exc = cls.__new__(cls, *args)
    Exception.__init__(exc, *args)
    exc.__dict__.update(fields)
    return exc


class XtokError(Exception):
    """Base class of every error this library raises on purpose."""

    def __reduce__(self):
        return _rebuild, (type(self), self.args, dict(self.__dict__))


class ConfigError(XtokError, ValueError):
    """A pipeline config, CLI option or tokenizer name is wrong."""


class SourceError(XtokError, IOError):
    """A shard could not be listed, opened or read."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None):
        where = ", ".join(x for x in (f"url={url}" if url else "", f"key={key}" if key else "") if x)
        super().__init__(f"{message} ({where})" if where else message)
        self.url, self.key = url, key

    def __str__(self) -> str:  # OSError would print "[Errno ...]" forms for 2-arg messages
        return str(self.args[0]) if self.args else ""


class DecodeError(SourceError):
    """A sample's field is missing or cannot be decoded."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None,
                 field: str | None = None):
        super().__init__(f"{message}; field '{field}'" if field else message, url=url, key=key)
        self.field = field


class StateError(XtokError, ValueError):
    """A saved state does not fit the stage or pipeline it is loaded into."""


class SampleError(DecodeError):
    """A sample handed to a collator (not read from a shard) has a bad field: ``url`` is the
    function that saw it (default ``collate_fn``), ``key`` the sample (``batch[i]``)."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None,
                 field: str | None = None):
        if field is None:  # rebuilt from its message alone (torch re-raises worker errors so)
            Exception.__init__(self, message)
            self.url, self.key, self.field = url, key, None
        else:
            super().__init__(message, url=url or "collate_fn", key=key, field=field)


class SampleTypeError(SampleError, TypeError):
    """A sample field has the wrong type (float ids, a string where a tensor belongs, ...)."""


class SampleValueError(SampleError, ValueError):
    """A sample field has a wrong value or shape (negative ids, a mask of another length)."""
