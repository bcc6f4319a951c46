"""The `.pipe` grammar as the parse modules see it: the lark parser built from `pipec/grammar/pipe.lark`
(once per process) and the tables of token kinds that lexing, recovery and messages share.

Only the `parse*` modules may import this: no lark object leaves them.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark

__all__ = [
    "ARROWS",
    "CLOSERS",
    "KEYWORD_TOKENS",
    "OPENERS",
    "PUNCTUATION",
    "ROLE_TOKENS",
    "VALUE_STARTS",
    "lark_parser",
]

_GRAMMAR_PATH = Path(__file__).resolve().parent.parent / "grammar" / "pipe.lark"

ROLE_TOKENS = {"SOURCE", "PROCESSOR", "SINK", "STAGE", "BULKSINK"}
KEYWORD_TOKENS = ROLE_TOKENS | {"USE", "AS", "PIPELINE", "WITH", "TRUE", "FALSE", "NULL"}
VALUE_STARTS = {"STRING", "NUMBER", "TRUE", "FALSE", "NULL", "NAME", "LSQB", "LBRACE"}
OPENERS = {"LBRACE": "RBRACE", "LSQB": "RSQB", "LPAR": "RPAR"}
CLOSERS = {v: k for k, v in OPENERS.items()}
ARROWS = {"ARROW", "FAT_ARROW"}
PUNCTUATION = {
    "ARROW": "->", "FAT_ARROW": "=>", "EQUAL": "=", "COLON": ":", "COMMA": ",", "DOT": ".",
    "LBRACE": "{", "RBRACE": "}", "LSQB": "[", "RSQB": "]", "LPAR": "(", "RPAR": ")",
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The strict LALR parser for the grammar; its basic lexer is also used on its own by `parse_lex`."""
    return Lark(
        _GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="basic",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=False,
    )
