"""One self-contained HTML page of a :class:`~.view.RowView` (no network, scripts or fonts from
elsewhere: CSS and a ~40-line script are inlined).

Per teacher, the row's text flows chunk by chunk; each chunk is a box with the student tokens on
top and the teacher tokens below, so both tokenizations' boundaries are drawn on the same text::

    | def| foo|(|   <- student tokens (one <i> each)      green  = exact chunk
    | def| fo|o(|   <- teacher tokens                     orange = not exact, red = unaligned

Each text line is a box with ``content-visibility: auto``, so the browser lays out only the
lines on screen. Hovering a token highlights its chunk partners in its own section and the same student token
with its partners in every other teacher's section. One delegated ``mouseover`` listener on the
document serves every token (no per-token handlers), and a student-position index is built once
at load, so a 4,096-token row with two teachers stays responsive. A ``#hover=SECTION:s|t:INDEX``
URL fragment replays a hover at load (used by the headless-browser test and for links).
"""

from __future__ import annotations

import html
import json

from .view import RowView, TeacherView, segments

CSS = """
body{font:13px/1.45 ui-monospace,Menlo,Consolas,monospace;margin:16px;color:#222;background:#fff}
h1{font-size:17px;margin:0 0 8px}h2{font-size:15px;margin:18px 0 6px}
table.summary{border-collapse:collapse;margin:6px 0}
table.summary td,table.summary th{border:1px solid #bbb;padding:2px 8px;text-align:right}
.legend span{padding:1px 6px;margin-right:6px;border:1px solid #999}
.flow{line-height:1}
.ln{content-visibility:auto;contain-intrinsic-size:auto 24px;min-height:20px}
.ch{display:inline-flex;flex-direction:column;margin:0 1px 6px 0;vertical-align:top;
 border:1px solid #999;border-radius:2px}
.ch>span{display:flex;min-height:17px}
.ch>.t{border-top:1px dashed #888}
.ex{background:#c8efc8}.nx{background:#ffd9a8}.un{background:#ffb9bf}
i{font-style:normal;white-space:pre;padding:1px 0;border-right:1px solid rgba(0,0,0,.35);cursor:default}
i:last-child{border-right:0}
i.sp{color:#6a1b9a;font-weight:bold}
i.me{background:#1565c0;color:#fff}i.hl{background:#ffeb3b;outline:1px solid #f57f17}
.ch.on{border-color:#1565c0;box-shadow:0 0 0 1px #1565c0}
.pm{display:inline-block;background:#37474f;color:#fff;font-size:11px;padding:1px 4px;margin:0 2px 6px 6px;
 border-radius:3px;vertical-align:top}
.mm{background:#00838f}
#st{position:sticky;top:0;background:#f5f5f5;border:1px solid #ccc;padding:4px;min-height:16px}
"""

JS = """
(function(){
var meta=JSON.parse(document.getElementById('xtok-meta').textContent);
var secs=[].slice.call(document.querySelectorAll('section.teacher'));
// per section: its student and teacher token elements in row order (index = token position)
var S=[],T=[];secs.forEach(function(sec,n){
 S.push([].slice.call(sec.querySelectorAll('.s>i')));T.push([].slice.call(sec.querySelectorAll('.t>i')));
 S[n].forEach(function(e,k){e._x=[n,'s',k];});T[n].forEach(function(e,k){e._x=[n,'t',k];});});
var lit=[],st=document.getElementById('st');
function mark(e,c){e.classList.add(c);lit.push([e,c]);}
function clear(){lit.forEach(function(p){p[0].classList.remove(p[1]);});lit=[];}
function partners(ch,me){mark(ch,'on');ch.querySelectorAll('i').forEach(function(e){
 if(e!==me)mark(e,'hl');});}
function hover(tok){
 clear();var x=tok._x,n=x[0],k=x[2],ch=tok.parentNode.parentNode;mark(tok,'me');partners(ch,tok);
 if(x[1]==='s'){S.forEach(function(a,o){if(o!==n&&a[k]){mark(a[k],'hl');partners(a[k].parentNode.parentNode,a[k]);}});}
 var t=meta.teachers[n],ids=x[1]==='s'?meta.student_ids:t.ids;
 st.textContent=t.name+': '+(x[1]==='s'?'student':'teacher')+' token '+k+' id '+ids[k]+' '+
  JSON.stringify(tok.textContent)+' | '+(ch.dataset.k!==undefined?'chunk '+ch.dataset.k+
  (ch.classList.contains('ex')?' exact':' not exact'):'unaligned: '+(tok.title||'?'));
 document.body.dataset.hovered=t.name+':'+(x[1]==='s'?'student':'teacher')+':'+k;
}
document.addEventListener('mouseover',function(ev){var e=ev.target;
 if(e&&e._x)hover(e);});
var m=/#hover=(\\d+):([st]):(\\d+)/.exec(location.hash);
if(m){var e=(m[2]==='s'?S:T)[+m[1]];e=e&&e[+m[3]];
 if(e){var h0=performance.now();e.dispatchEvent(new MouseEvent('mouseover',{bubbles:true}));
  document.body.dataset.hoverMs=(performance.now()-h0).toFixed(2);}}
document.body.dataset.ready=Math.round(performance.now());
})();
"""


def _label(text: str) -> str:
    return html.escape(text.replace("\n", "\u21b5").replace("\t", "\u2192"), quote=False)


def _tok(label: str, special: bool, reason: str | None) -> str:
    # no per-token attributes: the script indexes tokens by their order (keeps the page small)
    cls = ' class="sp"' if special else ""
    title = f' title="{html.escape(reason)}"' if reason else ""
    return f"<i{cls}{title}>{_label(label)}</i>"


LINE_CAP = 200  # segments per line box at most (a line box off screen is not laid out)


def _section(n: int, view: RowView, t: TeacherView) -> str:
    s, tt = view.student, t.tokens
    marks = {pos: ("pm", label) for pos, label in view.pieces}
    marks.update({pos: ("pm mm", label) for pos, label in view.marks.items()})
    out = [f'<section class="teacher" id="t{n}" data-name="{html.escape(t.name)}">'
           f"<h2>student {html.escape(view.student_name)} | teacher {html.escape(t.name)}</h2>"
           '<div class="flow"><div class="ln">']
    run = 0
    for seg in segments(t):
        for pos in range(*seg.s):
            if pos in marks:
                cls, label = marks[pos]
                out.append(f'<span class="{cls}" data-at="{pos}">\u25b8 {html.escape(label)}</span>')
        if seg.k >= 0:
            cls = "ex" if t.exact[seg.k] else "nx"
            out.append(f'<span class="ch {cls}" data-k="{seg.k}"><span class="s">')
        else:
            out.append('<span class="ch un"><span class="s">')
        out.extend(_tok(s.labels[i], s.special[i], t.student_reasons.get(i))
                   for i in range(*seg.s))
        out.append('</span><span class="t">')
        out.extend(_tok(tt.labels[j], tt.special[j], t.teacher_reasons.get(j))
                   for j in range(*seg.t))
        out.append("</span></span>")
        run += 1
        if (seg.s[1] > seg.s[0] and s.labels[seg.s[1] - 1].endswith("\n")) or run >= LINE_CAP:
            out.append('</div><div class="ln">')
            run = 0
    out.append("</div></div></section>")
    return "".join(out)


SUMMARY_COLUMNS = ("teacher", "teacher_tokens", "chunks", "exact_chunks", "exact_share",
                   "student_tokens_per_chunk", "teacher_tokens_per_chunk",
                   "unaligned_student_tokens", "unaligned_teacher_tokens", "unaligned_bytes")


HEADERS = {"teacher_tokens": "tokens", "exact_chunks": "exact", "exact_share": "exact share",
           "student_tokens_per_chunk": "student tok/chunk",
           "teacher_tokens_per_chunk": "teacher tok/chunk",
           "unaligned_student_tokens": "unaligned student", "unaligned_teacher_tokens":
           "unaligned teacher", "unaligned_bytes": "unaligned bytes"}


def _cell(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def page(view: RowView) -> str:
    """The HTML page (a str) of ``view``."""
    summaries = view.summaries()
    head = "".join(f"<th>{HEADERS.get(c, c)}</th>" for c in SUMMARY_COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(s[c])}</td>" for c in SUMMARY_COLUMNS) + "</tr>"
                   for s in summaries)
    pieces = ", ".join(html.escape(label) for _, label in view.pieces)
    body = "".join(_section(n, view, t) for n, t in enumerate(view.teachers))
    meta = json.dumps({"title": view.title, "student": view.student_name,
                       "student_ids": view.student.ids.tolist(), "summaries": summaries,
                       "teachers": [{"name": t.name, "ids": t.tokens.ids.tolist()}
                                    for t in view.teachers]}).replace("</", "<\\/")
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>xtok inspect: {html.escape(view.title)}</title><style>{CSS}</style></head><body>"
        f"<h1>xtok inspect: {html.escape(view.title)} ({len(view.student.ids)} student tokens; "
        f"pieces: {pieces})</h1>"
        '<div class="legend"><span class="ex">exact chunk</span><span class="nx">not exact</span>'
        '<span class="un">unaligned</span><span class="pm">\u25b8 document piece</span>'
        '<span class="pm mm">\u25b8 message</span> top: student tokens, below: teacher tokens; '
        "hover a token to see its partners</div>"
        f'<table class="summary"><tr>{head}</tr>{rows}</table><div id="st"></div>{body}'
        f'<script type="application/json" id="xtok-meta">{meta}</script>'
        f"<script>{JS}</script></body></html>"
    )
