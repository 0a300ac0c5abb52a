"""See one sample as the model sees it: student and teacher tokens, chunk pairing, what was left
unaligned and why (``xtok inspect``; docs/inspect.md).

>>> html = render_html(batch, row=0, config=config)         # one self-contained page
>>> print(render_text(row_view(batch, 0, config=config)))    # the terminal view
"""

from __future__ import annotations

from typing import Any

from .html import page
from .text import render_text
from .view import RowView, Segment, TeacherView, eval_view, row_view, segments


def render_html(batch: Any, row: int = 0, **kwargs: Any) -> str:
    """HTML page of ``batch`` row ``row``; ``kwargs`` as :func:`row_view` (``config=`` or
    ``student=``/``teachers=``, ``only=``, ``marks=``, ``title=``)."""
    return page(row_view(batch, row, **kwargs))


def render_eval_html(tokenized: Any, **kwargs: Any) -> str:
    """HTML page of a tokenized eval record; ``kwargs`` as :func:`eval_view`."""
    return page(eval_view(tokenized, **kwargs))


__all__ = ["RowView", "Segment", "TeacherView", "eval_view", "page", "render_eval_html",
           "render_html", "render_text", "row_view", "segments"]
