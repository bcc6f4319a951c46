"""Text -> AST: the `.pipe` parser's entry point.

`parse(text, path)` never raises. It runs three stages over one `SourceText` (`parse_source`), which maps
offsets to spans and collects the diagnostics:

1. `parse_lex` lexes the whole text first, reporting bad characters, unterminated strings, bad escapes
   and malformed numbers as it goes;
2. `parse_recovery` feeds the tokens one by one to lark's LALR parser (`parse_grammar`). On a syntax
   error it reports the error in the language's words (`parse_messages`), rolls the parser back to the
   last statement boundary it saved, skips to the next line (or the next statement keyword) and goes
   on, so one run reports every independent error without cascades;
3. `parse_tree` converts the lark tree to the frozen dataclasses of `ast.py`. After a syntax error the
   tree holds the statements that recovery kept; those become `ParseResult.partial`, minus every
   statement that shares a line with a syntax error, so that the checker can still report the
   mistakes in the lines that did parse (an unknown type, a bad config key) in the same run.

No lark object leaves the `parse*` modules: a `ParseResult` holds only `ast` dataclasses and
`Diagnostic`s. This module also owns the catalogue of syntax error codes and the cap on how many are
reported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipec.compiler import ast
from pipec.compiler.diagnostics import Diagnostic
from pipec.compiler.parse_lex import Lexer
from pipec.compiler.parse_recovery import RecoveringParser
from pipec.compiler.parse_source import MAX_ERRORS, SourceText
from pipec.compiler.parse_tree import TreeBuilder

__all__ = ["MAX_ERRORS", "SYNTAX_CODES", "ParseResult", "parse"]

SYNTAX_CODES: dict[str, str] = {
    "P001": "unexpected token: something appears where the language does not allow it",
    "P002": "unexpected end of file: the file ends inside a statement or an open bracket",
    "P003": "unterminated string: a '\"' is not closed on the same line",
    "P004": "invalid escape sequence in a string",
    "P005": "unknown declaration keyword (a misspelt source/processor/sink/stage/bulksink/pipeline/use)",
    "P006": "unclosed bracket: a '{', '[' or '(' is not closed before the next statement",
    "P007": "invalid number, duration or percentage",
    "P008": "unexpected character that cannot start anything in the language",
    "P009": "missing '->' or '=>' between two nodes on a flow line",
    "P010": "a keyword used where a name is expected",
    "P011": 'invalid function call (only env("VAR"[, default]) and secret("VAR") exist)',
    "P012": "mismatched or unmatched closing bracket",
    "P013": "too many syntax errors: reporting stops after 20",
    "P014": "brackets nested too deeply",
    "P099": "internal parser error (a bug in pipec)",
}


@dataclass(frozen=True)
class ParseResult:
    """`file` is None exactly when `diagnostics` holds a syntax error.

    `partial` is then what did parse: the statements recovery kept, with no declaration that touches a
    syntax error. It is incomplete by construction (dropped lines may declare or use anything), so only
    checks local to one statement may run on it. None when the file parsed cleanly or recovery gave up.
    """

    file: ast.PipeFile | None
    diagnostics: tuple[Diagnostic, ...]
    partial: ast.PipeFile | None = None


def parse(text: str, path: str) -> ParseResult:
    """Parse the text of a `.pipe` file; `path` names it in every span."""
    try:
        return _run(text, path)
    except RecursionError:
        return _internal(path, "the file is too deeply nested to parse")
    except Exception as exc:  # a bug: still report it as a diagnostic, never raise
        return _internal(path, f"internal parser error ({type(exc).__name__}); please report it")


def _internal(path: str, message: str) -> ParseResult:
    span = ast.Span(path, 1, 1, 1, 2)
    return ParseResult(None, (Diagnostic("P099", "error", message, span),))


def _run(text: str, path: str) -> ParseResult:
    src = SourceText(text, path)
    lexer = Lexer(src)
    tokens = lexer.lex()
    tree = RecoveringParser(src, lexer.suppressing).parse_tokens(tokens) if tokens is not None else None
    built: ast.PipeFile | None = None
    if tree is not None:
        recovered = bool(src.diags)
        try:
            built = TreeBuilder(src, lexer.strings, lexer.numbers).file(tree)  # may report P011
        except Exception:
            if not recovered:
                raise
            # A repaired tree the builder cannot take: the syntax errors are reported alone.
    result = built if not src.diags else None
    partial = _without_bad_lines(built, src.diags) if built is not None and src.diags else None
    diags = sorted(src.diags, key=Diagnostic.sort_key)
    if len(diags) > MAX_ERRORS:
        extra = diags[MAX_ERRORS]
        diags = diags[:MAX_ERRORS]
        diags.append(
            Diagnostic("P013", "error", f"too many syntax errors; stopping after {MAX_ERRORS}", extra.span)
        )
    if diags:
        result = None
    return ParseResult(result, tuple(diags), partial if len(diags) <= MAX_ERRORS else None)


def _without_bad_lines(file: ast.PipeFile, diags: list[Diagnostic]) -> ast.PipeFile:
    """The file without the `use` lines, settings and declarations that share a line with a syntax error."""
    bad_lines = {line for d in diags for line in range(d.span.line, d.span.end_line + 1)}

    def clean(span: ast.Span) -> bool:
        return not any(span.line <= line <= span.end_line for line in bad_lines)

    pipelines = tuple(
        dataclasses.replace(
            pipeline,
            settings=tuple(pair for pair in pipeline.settings if clean(pair.span)),
            nodes=tuple(decl for decl in pipeline.nodes if clean(decl.span)),
        )
        for pipeline in file.pipelines
    )
    return dataclasses.replace(file, uses=tuple(u for u in file.uses if clean(u.span)), pipelines=pipelines)
