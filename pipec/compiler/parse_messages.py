"""The wording of syntax errors: what the parser expected and what it found, said in the language's words
(never lark's), with a help line where the likely fix is known.

`parse_recovery` decides where an error is, whether to report it and what to skip; the functions here
only choose the code and phrase the diagnostic. Lexical errors (P003, P004, P007, P008) are worded in
`parse_lex`, where they are found, and env()/secret() call errors (P011) in `parse_tree`.
"""

from __future__ import annotations

from collections.abc import Sequence

from lark import Token

from pipec.compiler import ast
from pipec.compiler.diagnostics import Note, did_you_mean
from pipec.compiler.parse_grammar import (
    ARROWS,
    CLOSERS,
    KEYWORD_TOKENS,
    OPENERS,
    PUNCTUATION,
    ROLE_TOKENS,
    VALUE_STARTS,
)
from pipec.compiler.parse_source import SourceText, tok_end, tok_start

__all__ = [
    "describe_expected",
    "describe_token",
    "report_eof",
    "report_stray_close",
    "report_unclosed",
    "report_unexpected",
    "show",
]

# The order in which alternatives are listed in "expected ..." messages.
_EXPECTED_ORDER = [
    "COLON", "ARROW", "FAT_ARROW", "EQUAL", "DOT", "AS", "WITH", "LBRACE", "LSQB", "LPAR",
    "COMMA", "RPAR", "RSQB", "RBRACE", "USE", "PIPELINE", "NAME", "STRING", "NUMBER", "_NL", "$END",
]  # fmt: skip
_NAME_AFTER = {
    "COLON": "a component type",
    "ARROW": "a node name",
    "FAT_ARROW": "a node name",
    "_NL": "a node name",
    "PIPELINE": "a pipeline name",
    "USE": "a module name",
    "AS": "an alias",
    **{role: "a node name" for role in ROLE_TOKENS},
}
_TOKEN_WORDS = {"STRING": "a string", "NUMBER": "a number", "_NL": "end of line", "$END": "end of file"}
_FOUND_WORDS = {"_NL": "end of line", "$END": "end of file"}


def show(text: str, limit: int = 30) -> str:
    """A fragment of user text, printable and short, for use inside quotes in a message."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def describe_token(tok: Token) -> str:
    kind = tok.type
    if kind in PUNCTUATION:
        return f"'{PUNCTUATION[kind]}'"
    if kind == "STRING":
        return f"string {show(str(tok))}"
    if kind in _FOUND_WORDS:
        return _FOUND_WORDS[kind]
    return f"'{show(str(tok))}'"


def describe_expected(expected: set[str], prev: Token | None) -> str:
    """The token kinds the parser would accept, as words: whole categories ("a value") where they
    are all there, and the name that fits after `prev` ("a component type" after ':')."""
    exp = set(expected)
    words: list[str] = []
    if {"NAME", "STRING"} <= exp and len(exp & KEYWORD_TOKENS) > 3:
        exp -= KEYWORD_TOKENS | {"NAME", "STRING"}
        words.append("a key")
    if exp >= ROLE_TOKENS:
        exp -= ROLE_TOKENS
        words.append("a declaration")
        if "NAME" in exp:
            exp.discard("NAME")
            words += ["a setting", "a flow"]
    if exp >= VALUE_STARTS:
        exp -= VALUE_STARTS
        words.append("a value")
    exp -= KEYWORD_TOKENS - {"USE", "PIPELINE", "AS", "WITH"}
    prev_kind = prev.type if prev is not None else ""
    for kind in sorted(exp, key=lambda k: _EXPECTED_ORDER.index(k) if k in _EXPECTED_ORDER else 99):
        if kind == "NAME":
            words.append(_NAME_AFTER.get(prev_kind, "a name"))
        elif kind in PUNCTUATION:
            words.append(f"'{PUNCTUATION[kind]}'")
        elif kind in KEYWORD_TOKENS:
            words.append(f"'{kind.lower()}'")
        else:
            words.append(_TOKEN_WORDS.get(kind, kind.lower()))
    return _join(words) if words else "something else"


def _eof_span(src: SourceText, toks: list[Token]) -> ast.Span:
    last = next((t for t in reversed(toks) if t.type != "_NL"), None)
    if last is None:
        return src.span(0, 1)
    return src.span(tok_end(last), tok_end(last) + 1)


def report_eof(src: SourceText, toks: list[Token], expected: set[str], stack: list[Token]) -> None:
    """P002: the file ends where the parser expected more; `stack` holds the brackets still open."""
    if stack and OPENERS[stack[-1].type] in expected:
        opener = stack[-1]
        message = f"'{opener}' opened at {src.where(opener)} is never closed"
        help_: str | None = f"insert '{PUNCTUATION[OPENERS[opener.type]]}' to close it"
    else:
        prev = next((t for t in reversed(toks) if t.type != "_NL"), None)
        message = "expected " + describe_expected(expected, prev)
        if prev is not None:
            message += f" after {describe_token(prev)}"
        help_ = None
    src.error("P002", "unexpected end of file: " + message, _eof_span(src, toks), help_)


def report_unclosed(src: SourceText, opener: Token, toks: list[Token], next_statement: int) -> None:
    """P006: `opener` is still open when the statement at toks[next_statement] starts."""
    closer = PUNCTUATION[OPENERS[opener.type]]
    where = toks[next_statement]
    before = next((t for t in reversed(toks[:next_statement]) if t.type != "_NL"), opener)
    line = src.pos(tok_start(before))[0]
    src.error(
        "P006",
        f"'{opener}' is never closed",
        src.tok_span(opener),
        f"insert '{closer}' at the end of line {line}",
        [Note(f"the next statement starts here, at '{show(str(where))}'", src.tok_span(where))],
    )


def report_stray_close(src: SourceText, toks: list[Token], close_i: int, brace: Token) -> None:
    """P012: the '}' at toks[close_i] ended the pipeline opened by `brace`, but its statements go on."""
    at = next((j for j, t in enumerate(toks) if t is brace), 1)
    name = show(str(toks[at - 1]))
    src.error(
        "P012",
        f"unexpected '}}': it ends pipeline '{name}', but the pipeline goes on after it",
        src.tok_span(toks[close_i]),
        "remove this '}'",
        [Note(f"pipeline '{name}' opens here", src.tok_span(brace))],
    )


def report_unexpected(
    src: SourceText, toks: list[Token], i: int, expected: set[str], stack: list[Token]
) -> None:
    """The parser cannot take toks[i]: name the likely mistake (a misspelt keyword, a missing arrow,
    a keyword used as a name, a wrong closer...) or else say what was expected and what was found."""
    tok = toks[i]
    kind = tok.type
    prev = toks[i - 1] if i > 0 else None
    after = f" after {describe_token(prev)}" if prev is not None and prev.type != "_NL" else ""
    found = describe_token(tok)
    span = src.tok_span(tok)
    if kind == "_NL":
        anchor = tok_end(prev) if prev is not None and prev.type != "_NL" else tok_start(tok)
        span = src.span(anchor, anchor + 1)
    nxt = toks[i + 1] if i + 1 < len(toks) else None

    if kind in CLOSERS and (not stack or stack[-1].type != CLOSERS[kind]):
        if stack:
            opener = stack[-1]
            want = PUNCTUATION[OPENERS[opener.type]]
            message = f"expected '{want}' to close '{opener}' opened at {src.where(opener)}"
            message += f", found {found}"
        else:
            message = f"unexpected {found}: there is no '{PUNCTUATION[CLOSERS[kind]]}' to close"
        src.error("P012", message, span)
        return
    if {"USE", "PIPELINE"} <= expected and "ARROW" not in expected:
        if kind == "NAME":
            hint = did_you_mean(str(tok), ["use", "pipeline"])
            if hint:
                src.error("P005", f"unknown declaration '{show(str(tok))}'", span, hint)
                return
        if kind in ROLE_TOKENS or (kind == "NAME" and nxt is not None and nxt.type in ARROWS):
            what = "declarations" if kind in ROLE_TOKENS else "flows"
            src.error(
                "P001",
                f"{what} belong inside a pipeline, found {found} at the top level",
                span,
                "put it inside a pipeline: 'pipeline <name> { ... }'",
            )
            return
    if (
        prev is not None
        and prev.type == "NAME"
        and {"EQUAL", "ARROW", "FAT_ARROW"} <= expected
        and (kind == "NAME" or kind in KEYWORD_TOKENS)
    ):
        hint = did_you_mean(str(prev), [r.lower() for r in ROLE_TOKENS])
        if hint or (nxt is not None and nxt.type == "COLON"):
            src.error(
                "P005",
                f"unknown declaration '{show(str(prev))}'",
                src.tok_span(prev),
                hint or "a declaration starts with source, processor, sink, stage or bulksink",
            )
            return
    if kind == "NAME" and prev is not None and prev.type == "NAME" and "ARROW" in expected:
        src.error(
            "P009",
            f"expected '->' or '=>' between '{show(str(prev))}' and '{show(str(tok))}'",
            span,
            "insert '->' to connect them",
        )
        return
    if kind in KEYWORD_TOKENS and "NAME" in expected and kind not in expected:
        if kind == "USE" and stack:
            src.error("P001", "'use' lines belong at the top of the file, outside any pipeline", span)
        else:
            src.error(
                "P010",
                f"'{tok}' is a keyword and cannot be used as a name",
                span,
                f"choose another name, e.g. '{tok}_'",
            )
        return
    if expected == {"COLON"} and prev is not None and prev.type == "NAME":
        help_ = f"write '{show(str(prev))} : <type>'" if kind != "NAME" else f"insert ':' before '{tok}'"
        src.error(
            "P001",
            f"expected ':' and a component type after '{show(str(prev))}', found {found}",
            span,
            help_,
        )
        return
    message = f"expected {describe_expected(expected, prev)}{after}, found {found}"
    role_help = None
    if kind == "COLON" and {"EQUAL", "ARROW"} <= expected:
        role_help = "a declaration starts with its role: source, processor, sink, stage or bulksink"
    src.error("P001", message, span, role_help)
