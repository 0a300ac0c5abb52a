"""The row view and both renderers on a real row: two teachers, an exact and a non-exact chunk,
an unaligned special; structure checked against the batch and the bytes."""

from html.parser import HTMLParser

import numpy as np

from xtok_stream.align import byte_table
from xtok_stream.inspect import render_html, render_text, row_view, segments
from xtok_stream.tokenizers import load_tokenizer

from .conftest import CRAFTED


def test_view_is_the_batch_row_plus_reasons(first_batch, inspect_config):
    view = row_view(first_batch, 0, config=inspect_config)
    n = int(first_batch["input_lengths"][0])
    assert [t.name for t in view.teachers] == ["mistral-v3", "deepseek-v4"]
    assert view.pieces[0] == (0, f"crafted [0:{len(CRAFTED)}]")
    q = load_tokenizer("pkg:qwen2")
    table = byte_table(q)
    text = table.ids_bytes(first_batch["input_ids"][0, :n].numpy()).decode()
    shown = "".join(l for l, sp in zip(view.student.labels, view.student.special) if not sp)
    assert shown == text  # the labels are the row's text, cut at the student's boundaries
    for t in view.teachers:
        b = first_batch["teachers"][t.name]
        m = int(b["input_lengths"][0])
        assert np.array_equal(t.student_chunk, b["student_chunk_id"][0, :n].numpy())
        assert np.array_equal(t.teacher_chunk, b["teacher_chunk_id"][0, :m].numpy())
        # segments partition both sides, in order
        segs = segments(t)
        s_cover = [i for g in segs for i in range(*g.s)]
        t_cover = [j for g in segs for j in range(*g.t)]
        assert s_cover == list(range(n)) and t_cover == list(range(m))
        for g in segs:
            side = t.student_chunk[g.s[0]:g.s[1]]
            assert (side == g.k).all()
        # every token in no chunk has a reason, and only those
        assert set(t.student_reasons) == set(np.flatnonzero(t.student_chunk < 0).tolist())
        assert set(t.teacher_reasons) == set(np.flatnonzero(t.teacher_chunk < 0).tolist())
    mistral = view.teachers[0]
    assert mistral.exact.any() and not mistral.exact.all()
    # the literal "<s>" Mistral parsed as a special sits in a chunk, never an exact one
    bos = [j for j, label in enumerate(mistral.tokens.labels) if label == "<s>"]
    assert bos and all(mistral.teacher_chunk[j] >= 0 for j in bos)
    assert not any(mistral.exact[mistral.teacher_chunk[j]] for j in bos)
    # the student tokens past Mistral's max_len are a truncated tail
    assert mistral.student_reasons and set(mistral.student_reasons.values()) == {"truncated_tail"}


class Page(HTMLParser):
    """Sections of a rendered page: per section its student and teacher tokens in order (with
    their classes), chunk boxes and boundary marks; anything that would load from elsewhere."""

    def __init__(self):
        super().__init__()
        self.sections, self.tags, self.external = [], [], []
        self._side = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append({"name": a["data-name"], "s": [], "t": [], "chunks": [],
                                  "marks": 0})
        if tag in ("link", "img", "iframe") or "src" in a or (a.get("href") or "").startswith(
                ("http", "//")):
            self.external.append((tag, a))
        sec = self.sections[-1] if self.sections else None
        cls = a.get("class") or ""
        if sec is None:
            return
        if tag == "span" and cls in ("s", "t"):
            self._side = cls
        elif tag == "i" and self._side:
            sec[self._side].append(cls.split())
        elif tag == "span" and cls.startswith("ch "):
            sec["chunks"].append((cls.split()[1], int(a.get("data-k", -1))))
        elif tag == "span" and cls.startswith("pm"):
            sec["marks"] += 1

    def handle_endtag(self, tag):
        if tag == "span":
            self._side = None  # token spans hold only <i> elements


def test_html_page_structure(first_batch, inspect_config):
    page = render_html(first_batch, 0, config=inspect_config)
    p = Page()
    p.feed(page)
    assert not p.external and "http" not in page and "@import" not in page and "url(" not in page
    assert p.tags.count("script") == 2 and p.tags.count("table") == 1
    n = int(first_batch["input_lengths"][0])
    names = [s["name"] for s in p.sections]
    assert names == ["mistral-v3", "deepseek-v4"]
    for sec in p.sections:
        b = first_batch["teachers"][sec["name"]]
        assert len(sec["s"]) == n
        assert len(sec["t"]) == int(b["input_lengths"][0])
        k = int(b["num_chunks"][0])
        chunk_ids = [c for _, c in sec["chunks"] if c >= 0]
        assert chunk_ids == list(range(k))
        exact = b["chunk_exact"][0, :k].numpy()
        kinds = {c: kind for kind, c in sec["chunks"] if c >= 0}
        assert all(kinds[c] == ("ex" if exact[c] else "nx") for c in range(k))
        assert sec["marks"] == len(first_batch["pieces"][0])
    kinds = {kind for sec in p.sections for kind, _ in sec["chunks"]}
    assert kinds == {"ex", "nx", "un"}
    assert 'title="truncated_tail"' in page


def test_text_view_lists_columns_and_reasons(first_batch, inspect_config):
    out = render_text(row_view(first_batch, 0, config=inspect_config, only=["mistral-v3"]))
    assert "teacher mistral-v3:" in out and "deepseek" not in out
    assert "| NO" in out and "| yes" in out
    assert "unaligned student token" in out and "truncated_tail" in out
