"""Tree -> AST: converts the lark tree of a clean parse to the frozen dataclasses of `ast.py`.

Strings and numbers come already decoded and classified from `parse_lex`, keyed by offset. The one check
left for this stage is on env()/secret() calls (P011), which the grammar parses as any function call.
Every lark object stops here: what comes out holds only `ast` dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lark import Token, Tree

from pipec.compiler import ast
from pipec.compiler.diagnostics import did_you_mean
from pipec.compiler.parse_grammar import PUNCTUATION
from pipec.compiler.parse_lex import Number
from pipec.compiler.parse_messages import show
from pipec.compiler.parse_source import SourceText, tok_start

__all__ = ["TreeBuilder"]


class TreeBuilder:
    """Converts the lark tree of a clean parse to `ast` dataclasses (and checks env/secret calls)."""

    def __init__(self, src: SourceText, strings: dict[int, str], numbers: dict[int, Number]) -> None:
        self.src = src
        self.strings = strings  # decoded string literals by start offset, from the lexer
        self.numbers = numbers  # classified number literals by start offset, from the lexer

    def file(self, tree: Tree[Any]) -> ast.PipeFile:
        uses: list[ast.UseDecl] = []
        pipelines: list[ast.Pipeline] = []
        for child in _trees(tree):
            if child.data == "use":
                uses.append(self.use(child))
            else:
                pipelines.append(self.pipeline(child))
        return ast.PipeFile(self.src.path, self.src.text, tuple(uses), tuple(pipelines))

    def use(self, tree: Tree[Any]) -> ast.UseDecl:
        module = next(iter(_trees(tree)))
        parts = _tokens(module, "NAME")
        names = _tokens(tree, "NAME")
        alias = names[0] if names else parts[-1]
        return ast.UseDecl(
            ".".join(parts),
            self.src.tree_span(module),
            str(alias),
            self.src.tok_span(alias),
            self.src.tree_span(tree),
        )

    def pipeline(self, tree: Tree[Any]) -> ast.Pipeline:
        name = _tokens(tree, "NAME")[0]
        settings: list[ast.Pair] = []
        nodes: list[ast.NodeDecl] = []
        flows: list[ast.Flow] = []
        for child in _trees(tree):
            if child.data == "setting":
                key, _, value = child.children
                settings.append(self.pair_of(_tok(key), value, child))
            elif child.data == "node":
                nodes.append(self.node(child))
            else:
                flows.append(self.flow(child))
        return ast.Pipeline(
            str(name),
            self.src.tok_span(name),
            tuple(settings),
            tuple(nodes),
            tuple(flows),
            self.src.tree_span(tree),
        )

    def node(self, tree: Tree[Any]) -> ast.NodeDecl:
        role_tree, name, _, type_tree, *rest = tree.children
        role_tok = _tok(role_tree.children[0])
        config: tuple[ast.Pair, ...] = ()
        options: tuple[ast.Pair, ...] = ()
        config_span = options_span = None
        for block in rest:
            if block.data == "map":
                config, config_span = self.pairs(block), self.src.tree_span(block)
            else:
                block_map = block.children[1]
                options, options_span = self.pairs(block_map), self.src.tree_span(block_map)
        return ast.NodeDecl(
            role=str(role_tok).lower(),  # type: ignore[arg-type]
            role_span=self.src.tok_span(role_tok),
            name=str(name),
            name_span=self.src.tok_span(_tok(name)),
            type_name=".".join(_tokens(type_tree, "NAME")),
            type_span=self.src.tree_span(type_tree),
            config=config,
            config_span=config_span,
            options=options,
            options_span=options_span,
            span=self.src.tree_span(tree),
        )

    def flow(self, tree: Tree[Any]) -> ast.Flow:
        steps: list[ast.FlowStep] = []
        arrow: Token | None = None
        for child in tree.children:
            if isinstance(child, Tree):
                arrow = _tok(child.children[0])
                continue
            steps.append(
                ast.FlowStep(
                    str(child),
                    self.src.tok_span(child),
                    "->" if arrow is None or arrow.type == "ARROW" else "=>",
                    self.src.tok_span(arrow) if arrow is not None else None,
                )
            )
        first = steps[0]
        steps[0] = ast.FlowStep(first.name, first.span, None, None)
        return ast.Flow(tuple(steps), self.src.tree_span(tree))

    def pairs(self, tree: Tree[Any]) -> tuple[ast.Pair, ...]:
        out = []
        for pair in _trees(tree):
            key_tree, _, value = pair.children
            out.append(self.pair_of(_tok(key_tree.children[0]), value, pair))
        return tuple(out)

    def pair_of(self, key: Token, value: Tree[Any] | Token, whole: Tree[Any]) -> ast.Pair:
        text = self.strings.get(tok_start(key), "") if key.type == "STRING" else str(key)
        return ast.Pair(text, self.src.tok_span(key), self.value(value), self.src.tree_span(whole))

    def value(self, node: Tree[Any] | Token) -> ast.Value:
        p = self.src
        if isinstance(node, Token):
            span = p.tok_span(node)
            kind = node.type
            if kind == "STRING":
                return ast.StringValue(self.strings.get(tok_start(node), ""), span)
            if kind == "NUMBER":
                number_kind, number = self.numbers.get(tok_start(node), ("int", 0))
                if number_kind == "int":
                    return ast.IntValue(int(number), span)
                if number_kind == "float":
                    return ast.FloatValue(float(number), span)
                if number_kind == "duration":
                    return ast.DurationValue(float(number), str(node), span)
                return ast.PercentValue(float(number), str(node), span)
            if kind in ("TRUE", "FALSE"):
                return ast.BoolValue(kind == "TRUE", span)
            if kind == "NULL":
                return ast.NullValue(span)
            return ast.RefValue(str(node), span)
        span = p.tree_span(node)
        if node.data == "list":
            items = [c for c in node.children if not _is_punct(c)]
            return ast.ListValue(tuple(self.value(c) for c in items), span)
        if node.data == "map":
            return ast.MapValue(self.pairs(node), span)
        return self.call(node)

    def call(self, tree: Tree[Any]) -> ast.Value:
        p = self.src
        span = p.tree_span(tree)
        func = _tok(tree.children[0])
        name = str(func)
        positional: list[ast.Value] = []
        named: list[tuple[Token, ast.Value]] = []
        for arg in _trees(tree):
            if len(arg.children) == 3:
                named.append((_tok(arg.children[0]), self.value(arg.children[2])))
            else:
                if named:
                    p.error("P011", f"a positional argument cannot follow 'default = ...' in {name}()",
                            p.tree_span(arg))  # fmt: skip
                positional.append(self.value(arg.children[0]))
        placeholder = ast.NullValue(span)
        if name not in ("env", "secret"):
            p.error(
                "P011",
                f"unknown function '{show(name)}'",
                p.tok_span(func),
                did_you_mean(name, ["env", "secret"]) or 'the functions are env("VAR") and secret("VAR")',
            )
            return placeholder
        if not positional or not isinstance(positional[0], ast.StringValue):
            where = positional[0].span if positional else span
            p.error(
                "P011",
                f"{name}() needs the variable name as a string",
                where,
                f'write {name}("<variable name>")',
            )
            return placeholder
        var = positional[0].value
        if not var or "=" in var or "\0" in var:  # no environment can hold such a variable
            p.error(
                "P011",
                f"{name}() needs a variable name, got {show(repr(var))}",
                positional[0].span,
                "name the variable, e.g. ORDERS_DB; a name cannot be empty or contain '=' or NUL",
            )
            return placeholder
        if name == "secret":
            if len(positional) > 1 or named:
                extra = named[0][0] if named else None
                p.error(
                    "P011",
                    "secret() takes only the variable name: a secret has no default",
                    p.tok_span(extra) if extra is not None else positional[1].span,
                )
                return placeholder
            return ast.SecretValue(var, span)
        default: ast.Value | None = positional[1] if len(positional) > 1 else None
        for key, value in named:
            if str(key) != "default":
                p.error(
                    "P011",
                    f"env() has no argument '{show(str(key))}'",
                    p.tok_span(key),
                    did_you_mean(str(key), ["default"]) or "the only named argument is 'default'",
                )
            elif default is not None:
                p.error("P011", "env() takes one default value", p.tok_span(key))
            else:
                default = value
        if len(positional) > 2:
            p.error("P011", "env() takes a variable name and an optional default", positional[2].span)
        return ast.EnvValue(var, default, span)


def _trees(tree: Tree[Any]) -> Iterable[Tree[Any]]:
    return (c for c in tree.children if isinstance(c, Tree))


def _tokens(tree: Tree[Any], kind: str) -> list[Token]:
    return [c for c in tree.children if isinstance(c, Token) and c.type == kind]


def _tok(node: Tree[Any] | Token) -> Token:
    assert isinstance(node, Token)
    return node


def _is_punct(node: Tree[Any] | Token) -> bool:
    return isinstance(node, Token) and node.type in PUNCTUATION
