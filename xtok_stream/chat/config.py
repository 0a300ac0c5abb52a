"""The pipeline's ``chat:`` block (absent = text mode).

Defined in :mod:`xtok_stream.config` with the other blocks, so the config module depends on no
subpackage (chat/ reads the config, never the reverse); re-exported here for chat/'s modules.
"""

from ..config import MISTRAL_COMMON, ChatConfig, template_file

__all__ = ["MISTRAL_COMMON", "ChatConfig", "template_file"]
