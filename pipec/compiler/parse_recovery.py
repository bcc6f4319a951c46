"""Parsing tokens with error recovery: one run reports every independent syntax error, without cascades.

The tokens from `parse_lex` are fed one by one to lark's LALR parser, saving a checkpoint (a copy of the
parser state and the brackets open there) at every statement boundary. On a syntax error the error is
reported (worded by `parse_messages`; not at all when a lexical error on the same statement most
likely caused it), then either the statement is repaired (one missing punctuation token inserted, or
the stray one deleted, if the next two lines then parse) and re-parsed from the checkpoint, or the
parser rolls back to the checkpoint and skips to the next statement: the next line at the checkpoint's
bracket depth, or the next 'pipeline'/'use' line at the top level. Unclosed brackets and a pipeline's
early '}' are recognised when the next statement starts, and reported as such.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lark import Token, Tree
from lark.exceptions import UnexpectedToken
from lark.parsers.lalr_parser_state import ParserState

from pipec.compiler import parse_messages as messages
from pipec.compiler.diagnostics import closest
from pipec.compiler.parse_grammar import ARROWS, CLOSERS, OPENERS, PUNCTUATION, ROLE_TOKENS, lark_parser
from pipec.compiler.parse_source import MAX_ERRORS, SourceText, line_end, tok_end, tok_start

__all__ = ["RecoveringParser"]

_REPAIR_INSERTS = ("LBRACE", "COLON", "ARROW", "EQUAL", "RBRACE", "RSQB", "RPAR", "COMMA")
_REPAIR_LOOKAHEAD = 60  # tokens a repair must parse (or two newlines, whichever comes first)


@dataclass(frozen=True)
class _Checkpoint:
    """A parser state at a statement boundary, the open brackets there, and the token index after it."""

    state: ParserState[Any]
    stack: tuple[Token, ...]
    index: int


class RecoveringParser:
    """Parses one token list, reporting syntax errors into its `SourceText`."""

    def __init__(self, src: SourceText, suppressing: Sequence[int]) -> None:
        self.src = src
        self.suppressing = suppressing  # offsets of lexical errors that cause follow-on parse errors
        self.eof_reported = False
        self.pipeline_braces: set[int] = set()  # offsets of the '{' that open pipeline bodies
        # The last pipeline's closing '}' (token index) and the checkpoint inside the pipeline before it.
        self.closed: tuple[int, _Checkpoint] | None = None
        self.repairs = 0

    def parse_tokens(self, toks: list[Token]) -> Tree[Any] | None:
        """Feed the tokens to the LALR parser, recovering from errors; the tree if there were none.

        `toks` may be repaired in place (a missing token inserted, a stray one deleted); the parser then
        resumes from the checkpoint and re-feeds the repaired statement."""
        parser_state: ParserState[Any] = lark_parser().parse_interactive("").parser_state
        state = parser_state.copy(deepcopy_values=False)
        cp = _Checkpoint(parser_state, (), 0)
        top = cp
        stack: list[Token] = []
        region = 0  # offset where the statement being parsed began
        errors_at: dict[int, int] = {}
        i = 0
        while i < len(toks):
            if len(self.src.diags) > MAX_ERRORS:
                return None
            tok = toks[i]
            try:
                state.feed_token(tok)
            except UnexpectedToken as exc:
                errors_at[i] = errors_at.get(i, 0) + 1
                if errors_at[i] > 2:  # the checkpoint cannot take this token either: drop it
                    del toks[i]
                    cp = _Checkpoint(cp.state, cp.stack, i)
                    state, stack = cp.state.copy(deepcopy_values=False), list(cp.stack)
                    continue
                expected = self.acceptable(cp, toks, i, stack) or {str(e) for e in exc.expected}
                end_of_line = line_end(self.src.text, tok_start(tok))
                suppressed = errors_at[i] > 1 or any(region <= off < end_of_line for off in self.suppressing)
                resume, cp = self.recover(toks, i, expected, stack, cp, top, suppressed)
                if cp.stack == ():
                    top = cp
                state, stack = cp.state.copy(deepcopy_values=False), list(cp.stack)
                region = max(region, tok_end(toks[resume - 1]) if resume > 0 else 0)
                i = resume
                continue
            kind = tok.type
            boundary = False
            if kind in OPENERS:
                if kind == "LBRACE" and not stack and i >= 2 and toks[i - 2].type == "PIPELINE":
                    self.pipeline_braces.add(tok_start(tok))
                    boundary = True
                stack.append(tok)
            elif kind in CLOSERS:
                stack.pop()
            if kind == "_NL":
                at_top = not stack or (len(stack) == 1 and tok_start(stack[0]) in self.pipeline_braces)
                boundary = at_top and not (i > 0 and toks[i - 1].type in ARROWS)
            elif kind == "RBRACE" and not stack:
                self.closed = (i, cp)
                cp = top  # the pipeline closed: its inner checkpoint is stale
            elif kind in ("PIPELINE", "USE"):
                self.closed = None
            i += 1
            if boundary:
                cp = _Checkpoint(state.copy(deepcopy_values=False), tuple(stack), i)
                if not stack:
                    top = cp
                region = tok_end(tok)
        eof = Token("$END", "", start_pos=len(self.src.text), end_pos=len(self.src.text))
        try:
            tree = state.feed_token(eof, True)
        except UnexpectedToken as exc:
            suppressed = any(region <= off for off in self.suppressing)
            if not self.eof_reported and not suppressed:
                expected = self.acceptable(cp, toks, len(toks), stack) or {str(e) for e in exc.expected}
                self.eof_reported = True
                messages.report_eof(self.src, toks, expected - {"_NL"}, stack)
            return None
        return tree if isinstance(tree, Tree) else None

    def replay(self, cp: _Checkpoint, toks: list[Token], i: int) -> ParserState[Any] | None:
        """The parser state just before toks[i], rebuilt from the checkpoint without building trees."""
        state = cp.state.copy(deepcopy_values=False)
        conf = copy.copy(state.parse_conf)
        conf.callbacks = {}
        state.parse_conf = conf
        try:
            for tok in toks[cp.index : i]:
                state.feed_token(tok)
        except UnexpectedToken:
            return None
        return state

    def acceptable(self, cp: _Checkpoint, toks: list[Token], i: int, stack: list[Token]) -> set[str]:
        """The tokens the parser accepts before toks[i], exactly: LALR's own lookahead sets merge
        states, and would offer ']' after a setting's value."""
        state = self.replay(cp, toks, i)
        if state is None:
            return set()
        accepted = set()
        for kind in state.parse_conf.states[state.position]:
            if kind.isupper():
                trial = state.copy(deepcopy_values=False)
                try:
                    trial.feed_token(Token(kind, ""), kind == "$END")
                except UnexpectedToken:
                    continue
                accepted.add(kind)
        prev = toks[i - 1].type if 0 < i <= len(toks) else ""
        if prev in ARROWS:
            accepted.discard("_NL")  # a flow may continue on the next line, but nobody means that
        if "_NL" in accepted and stack and tok_start(stack[-1]) in self.pipeline_braces:
            accepted.discard("RBRACE")  # "or '}'" after every statement is noise
        elif len(accepted) > 1 and stack:
            accepted.discard("_NL")  # inside brackets a newline is only a separator
        return accepted

    def repair(
        self, cp: _Checkpoint, toks: list[Token], i: int, expected: set[str], stack: list[Token]
    ) -> bool:
        """Insert one missing punctuation token before toks[i], or delete toks[i], if the next two lines
        then parse; the repaired statement is re-parsed and nothing in it is reported twice."""
        base = self.replay(cp, toks, i)
        if base is None or self.repairs >= MAX_ERRORS * 2:
            return False
        keyword = _meant_keyword(toks[i], expected)
        if keyword is not None and _verify_line(base, keyword, toks, i + 1):
            # `pipline p {`: read it as the keyword it was meant to be, so the body is still checked.
            self.repairs += 1
            toks[i] = keyword
            return True
        if self.salvage_header(cp, toks, i):
            return True
        at = tok_start(toks[i])
        for kind in [k for k in _REPAIR_INSERTS if k in expected] + [""]:
            inserted = [Token(kind, PUNCTUATION[kind], start_pos=at, end_pos=at)] if kind else []
            if _verify(base, inserted, toks, i + (0 if kind else 1), len(stack), len(cp.stack)):
                self.repairs += 1
                toks[i : i + (0 if kind else 1)] = inserted
                if not kind and 0 < i < len(toks) and toks[i - 1].type == toks[i].type == "_NL":
                    del toks[i]
                return True
        return False

    def salvage_header(self, cp: _Checkpoint, toks: list[Token], i: int) -> bool:
        """A broken pipeline header that still ends in '{' (`pipeline "p" {`, `pipeline {`,
        `pipe line p {`): read it as `pipeline <placeholder> {`, so that the body is still checked.

        The error is already reported; the placeholder name is never shown as the user's."""
        if cp.stack:
            return False
        start = i
        while start > cp.index and toks[start - 1].type != "_NL":
            start -= 1
        first = toks[start]
        meant = first.type == "NAME" and closest(str(first), _TOP) == "pipeline"
        if first.type != "PIPELINE" and not meant:
            return False
        end = start
        while end < len(toks) and toks[end].type != "_NL":
            end += 1
        if end - 1 <= start or toks[end - 1].type != "LBRACE" or end - 1 < i:
            return False
        base = self.replay(cp, toks, start)
        if base is None:
            return False
        brace = toks[end - 1]
        keyword = Token("PIPELINE", "pipeline", start_pos=first.start_pos, end_pos=first.end_pos)
        named = toks[start + 1 : end - 1] or [brace]
        line = self.src.pos(tok_start(first))[0]
        name = Token(
            "NAME", f"pipeline_at_line_{line}", start_pos=tok_start(named[0]), end_pos=tok_end(named[-1])
        )
        if not _verify_line(base, keyword, [name, *toks[end - 1 :]], 0):
            return False
        self.repairs += 1
        toks[start:end] = [keyword, name, brace]
        return True

    def recover(
        self,
        toks: list[Token],
        i: int,
        expected: set[str],
        stack: list[Token],
        cp: _Checkpoint,
        top: _Checkpoint,
        suppressed: bool,
    ) -> tuple[int, _Checkpoint]:
        """Report the error at toks[i] (one per statement); return where to resume, from which checkpoint.

        Skipping reports nothing more: whatever else is wrong with the rest of the statement is most
        likely a consequence of the error already reported."""
        src = self.src
        n = len(toks)
        depth = len(cp.stack)

        def fits(k: int) -> bool:  # a statement of the checkpoint's level starts at toks[k]
            return _starts_statement(toks, k) and (toks[k].type in ("PIPELINE", "USE")) == (depth == 0)

        def resume(k: int, at: _Checkpoint = cp) -> tuple[int, _Checkpoint]:
            return k, _Checkpoint(at.state, at.stack, k)

        # The first token of the error's line (not before the checkpoint), and the brackets open there:
        # a statement that starts while a bracket is still open means that bracket was never closed.
        line_start = i
        while line_start > cp.index and toks[line_start - 1].type != "_NL":
            line_start -= 1
        if depth == 0 and self.closed is not None and self.closed[0] < i:
            # A '}' closed the pipeline, but pipeline statements follow: that '}' was a stray one.
            close_i, inner = self.closed
            same_line = all(t.type != "_NL" for t in toks[close_i:i])
            first = toks[line_start]
            continues = same_line or (
                _starts_statement(toks, line_start) and first.type not in ("PIPELINE", "USE")
            )
            before = self.replay(inner, toks, close_i) if continues else None
            after = close_i + 1
            if toks[close_i - 1].type == "_NL" and after < n and toks[after].type == "_NL":
                after += 1
            if before is not None and _verify(before, [], toks, after, 1, 1):
                self.closed = None
                if not suppressed:
                    messages.report_stray_close(src, toks, close_i, inner.stack[0])
                del toks[close_i]
                if 0 < close_i < len(toks) and toks[close_i - 1].type == toks[close_i].type == "_NL":
                    del toks[close_i]
                return inner.index, inner
        open_at_line = list(cp.stack)
        for tok in toks[cp.index : line_start]:
            _track(open_at_line, tok)
        if len(open_at_line) > depth and fits(line_start):
            if not suppressed:
                messages.report_unclosed(src, open_at_line[-1], toks, line_start)
            return resume(line_start)
        tok = toks[i]
        if line_start == i and tok.type == "PIPELINE" and depth == 1 and _starts_statement(toks, i):
            if not suppressed:
                messages.report_unclosed(src, cp.stack[0], toks, i)
            return resume(i, top)
        if not suppressed:
            messages.report_unexpected(src, toks, i, expected, stack)
        if self.repair(cp, toks, i, expected, stack):
            return cp.index, cp
        if depth == 0:  # at the top level: skip to the next 'pipeline' or 'use' line
            for k in range(i + 1, n):
                if toks[k - 1].type == "_NL" and fits(k):
                    return resume(k)
            self.eof_reported = True
            return resume(n)
        # Skip to the end of the statement: the next newline at the checkpoint's bracket depth.
        open_now = list(stack)
        for k in range(i, n):
            tok = toks[k]
            if k > i and toks[k - 1].type == "_NL" and len(open_now) > depth and fits(k):
                return resume(k)
            if tok.type == "_NL" and len(open_now) <= depth:
                return resume(k + 1)
            if tok.type in CLOSERS:
                match = self.closed_by(open_now, toks, k)
                if match < 0 or match < depth - 1:
                    continue  # closes nothing, or something beyond the checkpoint: ignore it
                if match == depth - 1:
                    if _trusted_close(toks, k):
                        return resume(k)
                    continue
                del open_now[match:]
                continue
            _track(open_now, tok)
        self.eof_reported = True
        return resume(n)

    def closed_by(self, open_now: list[Token], toks: list[Token], k: int) -> int:
        """Which open bracket toks[k] closes (-1: none). A closer that starts its line closes the
        bracket whose line has the same indentation, if any: a stray '{' must not eat the pipeline's '}'."""
        want = CLOSERS[toks[k].type]
        candidates = [j for j in range(len(open_now) - 1, -1, -1) if open_now[j].type == want]
        if not candidates:
            return -1
        if k > 0 and toks[k - 1].type == "_NL":
            col = self.src.pos(tok_start(toks[k]))[1]
            aligned = [j for j in candidates if self.src.indent(open_now[j]) == col]
            if aligned:
                return aligned[0]
        return candidates[0]


def _trusted_close(toks: list[Token], k: int) -> bool:
    """Whether a '}' met while skipping really ends the pipeline: it starts its line, or it ends
    its line and what follows is top-level (another pipeline, a use line, the end of the file)."""
    if k == 0 or toks[k - 1].type == "_NL":
        return True
    after = [t.type for t in toks[k + 1 : k + 3]]
    return after in ([], ["_NL"], ["_NL", "PIPELINE"], ["_NL", "USE"])


def _verify(
    base: ParserState[Any], inserted: list[Token], toks: list[Token], j: int, depth: int, level: int
) -> bool:
    """Whether `inserted` then toks[j:] parse from `base` for two more lines at bracket depth `level`
    (or a fixed number of tokens, or to the end of the file)."""
    trial = base.copy(deepcopy_values=False)
    follow = toks[j : j + _REPAIR_LOOKAHEAD]
    newlines = 0
    try:
        for tok in inserted + follow:
            trial.feed_token(tok)
            depth += (tok.type in OPENERS) - (tok.type in CLOSERS)
            newlines += tok.type == "_NL" and depth <= level
            if newlines == 2:
                return True
        if j + _REPAIR_LOOKAHEAD >= len(toks):
            trial.feed_token(Token("$END", ""), True)
    except UnexpectedToken:
        return False
    return True


_TOP = ("use", "pipeline")


def _meant_keyword(tok: Token, expected: set[str]) -> Token | None:
    """A top-level keyword (`pipeline`, `use`) that the misspelt name `tok` most likely means."""
    if tok.type != "NAME" or not {"USE", "PIPELINE"} <= expected:
        return None
    meant = closest(str(tok), _TOP)
    if meant is None:
        return None
    return Token(meant.upper(), meant, start_pos=tok.start_pos, end_pos=tok.end_pos, line=tok.line,
                 column=tok.column, end_line=tok.end_line, end_column=tok.end_column)  # fmt: skip


def _verify_line(base: ParserState[Any], keyword: Token, toks: list[Token], j: int) -> bool:
    """Whether the rest of the keyword's line, toks[j:] up to its newline, parses after it."""
    trial = base.copy(deepcopy_values=False)
    try:
        trial.feed_token(keyword)
        for tok in toks[j:]:
            trial.feed_token(tok)
            if tok.type == "_NL":
                return True
    except UnexpectedToken:
        return False
    return False


def _track(stack: list[Token], tok: Token) -> None:
    """Update a stack of open brackets with one token (a closer pops back to its own opener)."""
    if tok.type in OPENERS:
        stack.append(tok)
    elif tok.type in CLOSERS:
        want = CLOSERS[tok.type]
        for j in range(len(stack) - 1, -1, -1):
            if stack[j].type == want:
                del stack[j:]
                return


def _starts_statement(toks: Sequence[Token], k: int) -> bool:
    """Whether toks[k:] looks like the start of a statement (role/pipeline/use NAME, or NAME ->)."""
    if k + 1 >= len(toks):
        return False
    first, second = toks[k].type, toks[k + 1].type
    if first in ROLE_TOKENS or first in ("PIPELINE", "USE"):
        return second == "NAME"
    return first == "NAME" and second in ARROWS
