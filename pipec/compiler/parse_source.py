"""The text being parsed, as every parse stage sees it: character offsets mapped to spans, and the
diagnostics reported against it.

Positions come from character offsets mapped through `diagnostics.split_lines` (lines end only at
CR LF, CR and LF, as in the lexer), the same line model that `diagnostics.render_text` uses, so every
caret lands where the span says.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from lark import Token, Tree

from pipec.compiler import ast
from pipec.compiler.diagnostics import Diagnostic, Note, split_lines

__all__ = ["MAX_ERRORS", "SourceText", "line_end", "tok_end", "tok_start"]

MAX_ERRORS = 20


def tok_start(tok: Token) -> int:
    return tok.start_pos or 0


def tok_end(tok: Token) -> int:
    return tok.end_pos if tok.end_pos is not None else tok_start(tok) + len(tok)


def line_end(text: str, offset: int) -> int:
    """The offset of the line break that ends the line holding `offset` (or the end of the text)."""
    ends = [e for e in (text.find("\n", offset), text.find("\r", offset)) if e >= 0]
    return min(ends, default=len(text))


class SourceText:
    """One `.pipe` text and its path, its line starts, and the diagnostics reported so far."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        lines = split_lines(text, keepends=True)
        self.line_starts = [0]
        for line in lines:
            self.line_starts.append(self.line_starts[-1] + len(line))
        if len(self.line_starts) > 1:
            self.line_starts.pop()  # the offset after the last line starts no line
        self.diags: list[Diagnostic] = []

    def pos(self, offset: int) -> tuple[int, int]:
        """The 1-based line and column of `offset`."""
        index = bisect.bisect_right(self.line_starts, offset) - 1
        return index + 1, offset - self.line_starts[index] + 1

    def span(self, start: int, end: int) -> ast.Span:
        line, col = self.pos(start)
        if end <= start:
            return ast.Span(self.path, line, col, line, col)
        end_line, end_col = self.pos(end - 1)  # the last character, so a span never ends on the next line
        return ast.Span(self.path, line, col, end_line, end_col + 1)

    def tok_span(self, tok: Token) -> ast.Span:
        return self.span(tok_start(tok), tok_end(tok))

    def tree_span(self, tree: Tree[Any]) -> ast.Span:
        return self.span(tree.meta.start_pos, tree.meta.end_pos)

    def where(self, tok: Token) -> str:
        line, col = self.pos(tok_start(tok))
        return f"{line}:{col}"

    def indent(self, tok: Token) -> int:
        """The column of the first non-blank character on the line of `tok`."""
        line, _ = self.pos(tok_start(tok))
        start = self.line_starts[line - 1]
        j = start
        while j < len(self.text) and self.text[j] in " \t\f":
            j += 1
        return j - start + 1

    def error(
        self, code: str, message: str, span: ast.Span, help_: str | None = None, notes: Iterable[Note] = ()
    ) -> None:
        self.diags.append(Diagnostic(code, "error", message, span, tuple(notes), help_))
