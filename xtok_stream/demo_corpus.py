"""The embedded default corpus: the Python standard library's own sources and docstrings.

Every machine with Python has it, so ``xtok demo`` and the tests run with no network and no data
download. Documents come in a fixed order (sorted module paths): English prose (module
docstrings) and Python code (module sources). A few short multilingual documents (German, French,
Russian, Japanese, Chinese, emoji) make sure multi-byte text takes part too.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

MULTILINGUAL = [
    ("de", "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist "
           "Verpflichtung aller staatlichen Gewalt.\nÄrger über Öl und Übermut."),
    ("fr", "L'été dernier, nous sommes allés à la plage près de Nice ; c'était très agréable.\n"
           "Où est la bibliothèque ? Ça dépend…"),
    ("ru", "Съешь же ещё этих мягких французских булок, да выпей чаю.\nМосква — столица России."),
    ("ja", "吾輩は猫である。名前はまだ無い。\nどこで生れたかとんと見当がつかぬ。"),
    ("zh", "学而时习之，不亦说乎？有朋自远方来，不亦乐乎？\n人工智能正在改变世界。"),
    ("emoji", "Family: 👨‍👩‍👧‍👦, flags 🇩🇪🇫🇷, skin tones 👍🏽, robot 🤖.\r\n\tTabs\tand  spaces."),
]


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_documents(limit: int | None = None) -> Iterator[dict[str, str]]:
    """``{"id", "lang", "kind", "text"}`` dicts, deterministic for a given Python install."""
    n = 0
    for i, (lang, text) in enumerate(MULTILINGUAL):
        yield {"id": f"multi-{lang}", "lang": lang, "kind": "prose", "text": text * (3 + i)}
        n += 1
    root = stdlib_dir()
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts
                   and "test" not in p.parts and "tests" not in p.parts)
    for path in files:
        if limit is not None and n >= limit:
            return
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = path.relative_to(root).with_suffix("").as_posix()
        try:
            doc = ast.get_docstring(ast.parse(source))
        except (SyntaxError, ValueError):
            doc = None
        if doc and len(doc) > 200:
            yield {"id": f"doc-{rel}", "lang": "en", "kind": "prose", "text": doc}
            n += 1
        if source.strip() and (limit is None or n < limit):
            yield {"id": f"src-{rel}", "lang": "python", "kind": "code", "text": source}
            n += 1
