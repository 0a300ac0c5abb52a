"""Terminal view of a :class:`~.view.RowView`: the row's pieces, and per teacher its chunk
statistics, the first chunks as aligned columns and the unaligned tokens with their reasons::

    teacher mistral-v3: 812 tokens, 640 chunks, 91.4% exact, ...
         #  student                      | teacher                      | exact
         0  'def'                        | '▁def'                       | yes
"""

from __future__ import annotations

from .view import RowView, segments


def _cell(labels: list[str], lo: int, hi: int, width: int) -> str:
    s = "".join(repr(x)[1:-1] for x in labels[lo:hi])
    s = f"'{s}'" if hi > lo else "-"
    return s if len(s) <= width else s[: width - 1] + "\u2026"


def render_text(view: RowView, *, chunks: int = 20, unaligned: int = 20, width: int = 32) -> str:
    """Plain text (no colour codes: it also goes to logs)."""
    lines = [f"{view.title}: {len(view.student.ids)} student tokens ({view.student_name}), "
             f"{len(view.pieces)} document piece(s)"]
    ends = [p for p, _ in view.pieces[1:]] + [len(view.student.ids)]
    for (start, label), end in zip(view.pieces, ends):
        lines.append(f"  piece {label}: student tokens {start}..{end}")
    for pos, label in sorted(view.marks.items()):
        lines.append(f"  mark at student token {pos}: {label}")
    for t, s in zip(view.teachers, view.summaries()):
        lines.append(
            f"teacher {t.name}: {s['teacher_tokens']} tokens, {s['chunks']} chunks, "
            f"{s['exact_share']:.1%} exact, {s['student_tokens_per_chunk']:.2f} student / "
            f"{s['teacher_tokens_per_chunk']:.2f} teacher tokens per chunk, unaligned: "
            f"{s['unaligned_student_tokens']} student + {s['unaligned_teacher_tokens']} teacher "
            f"tokens ({s['unaligned_bytes']} bytes)")
        lines.append(f"  {'#':>5}  {'student':<{width}} | {'teacher':<{width}} | exact")
        shown = 0
        for seg in segments(t):
            if shown >= chunks:
                break
            tag = ("yes" if t.exact[seg.k] else "NO") if seg.k >= 0 else "unaligned"
            lines.append(f"  {seg.k if seg.k >= 0 else '-':>5}  "
                         f"{_cell(view.student.labels, *seg.s, width):<{width}} | "
                         f"{_cell(t.tokens.labels, *seg.t, width):<{width}} | {tag}")
            shown += 1
        for side, why, labels in (("student", t.student_reasons, view.student.labels),
                                  ("teacher", t.teacher_reasons, t.tokens.labels)):
            items = sorted(why.items())
            for i, r in items[:unaligned]:
                lines.append(f"  unaligned {side} token {i} {labels[i]!r}: {r}")
            if len(items) > unaligned:
                lines.append(f"  ... {len(items) - unaligned} more unaligned {side} tokens")
    return "\n".join(lines)
