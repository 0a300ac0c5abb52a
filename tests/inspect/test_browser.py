"""The page in a real headless Chromium: it draws (screenshot non-blank, of the window's size)
and hovering a student token highlights its partners, in its own teacher's section and in the
other's (the delegated listener run by a real ``mouseover`` event, replayed from ``#hover=``)."""

import subprocess

from PIL import Image

from xtok_stream.inspect import render_html, row_view

from .test_view import Page

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--virtual-time-budget=3000"]


def _run(exe, args, tmp_path):
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_page_draws_and_hover_highlights_partners(chromium, first_batch, inspect_config,
                                                  tmp_path):
    view = row_view(first_batch, 0, config=inspect_config)
    mistral = view.teachers[0]
    # a student token in a chunk of several teacher tokens: the partners to highlight
    k = next(c for c in range(mistral.num_chunks)
             if (mistral.teacher_chunk == c).sum() > 1 and not mistral.exact[c])
    s_idx = int((mistral.student_chunk == k).nonzero()[0][0])
    page = tmp_path / "row.html"
    page.write_text(render_html(first_batch, 0, config=inspect_config), encoding="utf-8")
    url = f"file://{page}#hover=0:s:{s_idx}"

    shot = tmp_path / "shot.png"
    r = _run(chromium, [f"--screenshot={shot}", "--window-size=1000,700", url], tmp_path)
    assert shot.exists(), r.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1000, 700)
    colours = img.getcolors(maxcolors=1 << 20)
    assert len(colours) > 50  # text, chunk colours, highlight: not a blank page
    px = set(c for _, c in colours)
    assert (0x15, 0x65, 0xC0) in px  # the hovered token's colour is on screen

    dom = _run(chromium, ["--dump-dom", url], tmp_path).stdout
    assert f'data-hovered="mistral-v3:student:{s_idx}"' in dom
    p = Page()
    p.feed(dom)
    mine, other = p.sections

    def lit(tokens):
        return sorted(i for i, cls in enumerate(tokens) if "hl" in cls)

    assert "me" in mine["s"][s_idx]
    assert lit(mine["t"]) == sorted(int(j) for j in (mistral.teacher_chunk == k).nonzero()[0])
    # the same student token in the deepseek section is lit, with its partners there
    ds = view.teachers[1]
    k2 = int(ds.student_chunk[s_idx])
    assert s_idx in lit(other["s"])
    assert lit(other["t"]) == sorted(int(j) for j in (ds.teacher_chunk == k2).nonzero()[0])
