"""What the report shares with the served view (forecast.serve), kept in one place:
`static/report.css` and `static/team-table.js`, which the report inlines into its single
self-contained file and the served view serves as files (its Content Security Policy allows no
inline script or style), and `templates/_shared.html`, the Jinja macros both templates import.

Reads package files only; never imports forecast.serve (the arrow points the other way).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import BaseLoader, PackageLoader
from markupsafe import Markup

STATIC = Path(__file__).parent / "static"


@cache
def inline(name: str) -> Markup:
    """`static/NAME` as written, for the report to inline: the file's final newline is left
    out, so the template places the text the way the file would sit on its own lines."""
    return Markup((STATIC / name).read_text(encoding="utf-8").removesuffix("\n"))


def templates() -> BaseLoader:
    """The report's templates, for the served view to import `_shared.html` from."""
    return PackageLoader("forecast.report", "templates")
