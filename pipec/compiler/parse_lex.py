"""Lexing `.pipe` text, with lexical error recovery.

The whole text is lexed before parsing starts. Bad characters, unterminated strings, bad escapes and
malformed numbers are reported here (P003, P004, P007, P008) and lexing goes on; an unterminated or
single-quoted string becomes an empty STRING token so the parser sees a value where one was meant.
Brackets nested too deeply (P014) stop everything. String literals are decoded and number literals
classified on the way, keyed by their start offset, for `parse_tree` to use.
"""

from __future__ import annotations

import math
import re

from lark import Token
from lark.exceptions import UnexpectedCharacters
from lark.lexer import BasicLexer, LexerState
from lark.utils import TextSlice

from pipec.compiler.diagnostics import Note
from pipec.compiler.parse_grammar import CLOSERS, OPENERS, ROLE_TOKENS, lark_parser
from pipec.compiler.parse_messages import show
from pipec.compiler.parse_source import MAX_ERRORS, SourceText, line_end, tok_start

__all__ = ["MAX_NESTING", "Lexer", "Number"]

MAX_NESTING = 64

# ---------------------------------------------------------------------------------- number literals
_NUM = r"[0-9]+(?:_[0-9]+)*"
_REAL = rf"{_NUM}(?:\.{_NUM})?(?:[eE][-+]?{_NUM})?"
_INT_RE = re.compile(rf"-?{_NUM}")
_FLOAT_RE = re.compile(rf"-?{_REAL}")
_DURATION_RE = re.compile(rf"(-?{_REAL})(ms|s|m|h)")
_PERCENT_RE = re.compile(rf"(-?{_REAL})%")
_UNIT_RE = re.compile(rf"(-?{_REAL})([A-Za-z]+)")
_UNIT_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT_ALIASES = {
    "sec": "s", "secs": "s", "second": "s", "seconds": "s", "S": "s",
    "min": "m", "mins": "m", "minute": "m", "minutes": "m", "M": "m",
    "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "H": "h",
    "msec": "ms", "msecs": "ms", "millis": "ms", "milliseconds": "ms", "MS": "ms",
}  # fmt: skip

Number = tuple[str, float]  # ("int" | "float" | "duration" | "percent", value)


class _BadNumber(Exception):
    def __init__(self, message: str, help_: str | None = None) -> None:
        super().__init__(message)
        self.message, self.help = message, help_


def _classify_number(text: str) -> Number:
    """("int", 3), ("duration", 0.2), ... for a valid literal; raises _BadNumber otherwise."""
    kind, value = "", 0.0
    try:
        if _INT_RE.fullmatch(text):
            return ("int", int(text))
        if _FLOAT_RE.fullmatch(text):
            kind, value = "float", float(text)
        elif m := _DURATION_RE.fullmatch(text):
            if text.startswith("-"):
                raise _BadNumber(f"a duration cannot be negative: '{show(text)}'")
            number, unit = float(m.group(1)), m.group(2)
            kind, value = "duration", number / 1000 if unit == "ms" else number * _UNIT_FACTORS[unit]
        elif m := _PERCENT_RE.fullmatch(text):
            kind, value = "percent", float(m.group(1)) / 100
    except (ValueError, OverflowError):
        kind, value = "number", math.inf
    if kind and math.isfinite(value):
        return (kind, value)
    if kind:
        raise _BadNumber(f"{kind} '{show(text)}' is too large")
    if m := _UNIT_RE.fullmatch(text):
        unit = m.group(2)
        fix = _UNIT_ALIASES.get(unit) or _UNIT_ALIASES.get(unit.lower())
        hint = f"did you mean '{m.group(1)}{fix}'? " if fix else ""
        raise _BadNumber(
            f"unknown duration unit '{show(unit)}' in '{show(text)}'",
            f"{hint}durations use the units ms, s, m and h",
        )
    raise _BadNumber(f"invalid number '{show(text)}'")


STATEMENT_KEYWORDS = ROLE_TOKENS | {"PIPELINE", "USE"}

# --------------------------------------------------------------------------------------------- lexer
class Lexer:
    """Lexes one text, reporting into its `SourceText`; what it learns is kept for the later stages."""

    def __init__(self, src: SourceText) -> None:
        self.src = src
        self.suppressing: list[int] = []  # offsets of lexical errors that cause follow-on parse errors
        self.strings: dict[int, str] = {}  # decoded string literals by start offset
        self.numbers: dict[int, Number] = {}  # classified number literals by start offset
        self.last_bad_line = 0

    def lex(self) -> list[Token] | None:
        """All tokens, or None after a fatal lexical problem (nesting too deep)."""
        src = self.src
        text = src.text
        lexer = lark_parser().parser.lexer
        assert isinstance(lexer, BasicLexer)
        state = LexerState(TextSlice(text, 0, len(text)))
        tokens: list[Token] = []
        depth = 0
        bad_run: list[int] = []  # [start, end) of the current run of unexpected characters
        while len(src.diags) <= MAX_ERRORS * 2:
            try:
                tok = lexer.next_token(state)
            except EOFError:
                break
            except UnexpectedCharacters:
                pos = state.line_ctr.char_pos
                skip, synthesized = self.lex_error(pos, bad_run)
                if synthesized is not None:
                    tokens.append(synthesized)
                state.line_ctr.feed(text[pos : pos + skip])
                continue
            if tok.type == "STRING":
                self.strings[tok_start(tok)] = self.decode_string(tok)
            elif tok.type == "NUMBER":
                self.check_number(tok)
            elif tok.type in OPENERS:
                depth += 1
                if depth > MAX_NESTING:
                    src.error(
                        "P014",
                        f"brackets are nested more than {MAX_NESTING} levels deep",
                        src.tok_span(tok),
                    )
                    return None
            elif tok.type in CLOSERS:
                depth = max(depth - 1, 0)
            elif tok.type in STATEMENT_KEYWORDS and (not tokens or tokens[-1].type == "_NL"):
                # A declaration keyword starting a line begins a new statement (no value can hold
                # one), so brackets still open are unclosed (P006, reported by the parser), not nested.
                depth = min(depth, 0 if tok.type in ("PIPELINE", "USE") else 1)
            tokens.append(tok)
        self.flush_bad_run(bad_run)
        return tokens

    def flush_bad_run(self, bad_run: list[int]) -> None:
        if not bad_run:
            return
        src = self.src
        start, end = bad_run
        chars = src.text[start:end]
        self.suppressing.append(start)
        line = src.pos(start)[0]
        if line == self.last_bad_line:  # one per line: the rest are likely the same mistake
            bad_run.clear()
            return
        self.last_bad_line = line
        plural = "s" if len(chars) > 1 else ""
        help_ = None
        if chars == ";":
            help_ = "a statement ends at the end of its line; remove the ';'"
        elif chars in ("-", "=", ">"):
            help_ = "flows are written 'a -> b' or 'stage => bulk'"
        src.error("P008", f"unexpected character{plural} '{show(chars)}'", src.span(start, end), help_)
        bad_run.clear()

    def lex_error(self, pos: int, bad_run: list[int]) -> tuple[int, Token | None]:
        """Report the character at `pos` that starts no token; return how many characters to skip."""
        src = self.src
        text = src.text
        char = text[pos]
        eol = pos
        while eol < len(text) and text[eol] not in "\r\n":
            eol += 1
        if char in "\"'":
            self.flush_bad_run(bad_run)
            if char == '"':
                end = _continued_string_end(text, eol)
                notes: list[Note] = []
                line_start = src.line_starts[src.pos(pos)[0] - 1]
                first_quote = text.find('"', line_start, pos)
                if end < eol and first_quote >= 0:
                    # An odd number of quotes: the error is likely at the first one, and the
                    # characters between the quotes that failed to lex are artefacts of it.
                    line, col = src.pos(first_quote)
                    src.diags[:] = [
                        d
                        for d in src.diags
                        if not (d.code == "P008" and d.span.line == line and d.span.col > col)
                    ]
                    notes.append(
                        Note(
                            "this line has an odd number of '\"'; the first is here",
                            src.span(first_quote, first_quote + 1),
                        )
                    )
                src.error(
                    "P003",
                    "unterminated string" + (": a string cannot span lines" if end > eol else ""),
                    src.span(pos, eol),
                    "close the string with '\"' on the same line (write \\n for a line break)",
                    notes,
                )
                end = max(end, eol)
            else:
                close = text.find("'", pos + 1, eol)
                if close < 0 or "#" in text[pos:close]:
                    bad_run[:] = [pos, pos + 1]
                    self.flush_bad_run(bad_run)
                    return 1, None
                end = close + 1
                inner = text[pos + 1 : close]
                src.error(
                    "P008",
                    "strings are written in double quotes",
                    src.span(pos, end),
                    f'write "{show(inner)}"',
                )
            self.suppressing.append(pos)
            tok = Token("STRING", '""', start_pos=pos, end_pos=end)
            self.strings[pos] = ""
            return end - pos, tok
        if bad_run and bad_run[1] == pos:
            bad_run[1] = pos + 1
        else:
            self.flush_bad_run(bad_run)
            bad_run[:] = [pos, pos + 1]
        return 1, None

    def decode_string(self, tok: Token) -> str:
        src = self.src
        raw = tok[1:-1]
        if "\\" not in raw:
            return raw
        base = tok_start(tok) + 1
        out: list[str] = []
        j = 0
        while j < len(raw):
            char = raw[j]
            if char != "\\":
                out.append(char)
                j += 1
                continue
            esc = raw[j + 1] if j + 1 < len(raw) else ""
            simple = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}.get(esc)
            if simple is not None:
                out.append(simple)
                j += 2
                continue
            if esc == "u":
                digits = re.match(r"[0-9a-fA-F]{0,4}", raw[j + 2 : j + 6])
                hex4 = digits.group(0) if digits else ""
                if len(hex4) < 4:
                    src.error(
                        "P004",
                        "invalid unicode escape: '\\u' must be followed by 4 hex digits",
                        src.span(base + j, base + j + 2 + len(hex4)),
                        "write a character as \\u followed by 4 hex digits, e.g. \\u00e9",
                    )
                    j += 2 + len(hex4)
                    continue
                code = int(hex4, 16)
                low = re.match(r"\\u(d[c-f][0-9a-f]{2})", raw[j + 6 : j + 12], re.IGNORECASE)
                if 0xD800 <= code < 0xDC00 and low:
                    code = 0x10000 + ((code - 0xD800) << 10) + (int(low.group(1), 16) - 0xDC00)
                    out.append(chr(code))
                    j += 12
                elif 0xD800 <= code < 0xE000:
                    src.error(
                        "P004",
                        f"invalid unicode escape '\\u{hex4}': half of a surrogate pair",
                        src.span(base + j, base + j + 6),
                        "write the whole pair (\\ud83d\\ude00) or the character itself",
                    )
                    j += 6
                else:
                    out.append(chr(code))
                    j += 6
                continue
            src.error(
                "P004",
                f"invalid escape '\\{show(esc)}' in string",
                src.span(base + j, base + j + 2),
                'valid escapes are \\" \\\\ \\n \\t \\r and \\uXXXX; write \\\\ for a backslash',
            )
            j += 2
        return "".join(out)

    def check_number(self, tok: Token) -> None:
        try:
            self.numbers[tok_start(tok)] = _classify_number(str(tok))
        except _BadNumber as bad:
            self.src.error("P007", bad.message, self.src.tok_span(tok), bad.help)
            self.suppressing.append(tok_start(tok))  # `pipeline 1p {`: one error for the one token


def _continued_string_end(text: str, eol: int) -> int:
    """When the line after an unterminated string holds an odd number of quotes, the string most likely
    contains a raw line break: return the offset after its closing quote so lexing resumes there."""
    start = eol + (2 if text.startswith("\r\n", eol) else 1)
    end, quotes, j = line_end(text, start), [], start
    while j < end:
        if text[j] == "\\":
            j += 1
        elif text[j] == '"':
            quotes.append(j)
        j += 1
    return quotes[0] + 1 if len(quotes) % 2 else -1
