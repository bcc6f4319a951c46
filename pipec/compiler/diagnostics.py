"""One `Diagnostic` type for every mistake pipec reports, and its two renderings (text and JSON).

Text follows gcc: `file:line:col: severity[CODE]: message`, then the source line with a caret underline,
then `note:` lines (each may point at its own location) and a `help:` line with the suggested fix.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipec.compiler.ast import Span

Severity = Literal["error", "warning"]

# Only these end a line in a `.pipe` file, as in the lexer. `str.splitlines` would also break at
# \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029, and every later position would be off by a line.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Those other separators are shown as spaces in an excerpt, so that the caret line stays aligned.
_SHOWN_AS_SPACE = str.maketrans(dict.fromkeys("\t\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """The lines of `text`, broken only at \\r\\n, \\r and \\n (no empty last line after a final break)."""
    if keepends:
        lines = [m.group() for m in re.finditer(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)]
    else:
        lines = _LINE_BREAK.split(text)
        if lines and lines[-1] == "":
            lines.pop()
    return lines


@dataclass(frozen=True)
class Note:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span
    notes: tuple[Note, ...] = field(default_factory=tuple)
    suggestion: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.span.file, self.span.line, self.span.col, self.code, self.message)

    def as_error(self) -> Diagnostic:
        """The same diagnostic promoted to an error (`--strict`)."""
        return Diagnostic(self.code, "error", self.message, self.span, self.notes, self.suggestion)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "col": self.span.col,
            "end_line": self.span.end_line,
            "end_col": self.span.end_col,
            "notes": [
                {"message": n.message, **(_span_json(n.span) if n.span else {})} for n in self.notes
            ],
            "suggestion": self.suggestion,
        }


def _span_json(span: Span) -> dict[str, Any]:
    return {"file": span.file, "line": span.line, "col": span.col}


def _excerpt(span: Span, sources: Mapping[str, str]) -> list[str]:
    """The span's first source line and a caret underline under the spanned columns."""
    text = sources.get(span.file)
    if text is None:
        return []
    lines = split_lines(text)
    if not 1 <= span.line <= len(lines):
        return []
    line = lines[span.line - 1].translate(_SHOWN_AS_SPACE)
    start = max(span.col, 1)
    end = span.end_col if span.end_line == span.line else len(line) + 1
    # Columns count characters, a terminal counts cells: a wide (CJK) character takes two.
    pad = _cells(line[: start - 1])
    width = max(_cells(line[start - 1 : end - 1]), 1)
    return ["    " + line, "    " + " " * pad + "^" * width]


def _cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def render_text(diagnostic: Diagnostic, sources: Mapping[str, str]) -> str:
    d = diagnostic
    out = [f"{d.span}: {d.severity}[{d.code}]: {d.message}"]
    out.extend(_excerpt(d.span, sources))
    for note in d.notes:
        where = f"{note.span}: " if note.span else ""
        out.append(f"  note: {where}{note.message}")
    if d.suggestion:
        out.append(f"  help: {d.suggestion}")
    return "\n".join(out)


def render_all_text(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str]) -> str:
    diags = list(diagnostics)
    parts = [render_text(d, sources) for d in diags]
    errors = sum(1 for d in diags if d.is_error)
    warnings = len(diags) - errors
    if diags:
        parts.append(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}")
    return "\n".join(parts) + ("\n" if parts else "")


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2, ensure_ascii=False) + "\n"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to `name` (for "did you mean"), or None when nothing is close."""
    import difflib

    options = sorted(set(candidates))
    found = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if found:
        return found[0]
    lowered = {c.lower(): c for c in options}
    return lowered.get(name.lower())


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    best = closest(name, candidates)
    return f"did you mean '{best}'?" if best else None
