"""Rules about components, config, options and settings (P2xx, P4xx; DESIGN §1 graph rule 7).

The work is done once in the pipeline context (components.py resolves and validates, checks_options.py
reads options and settings); these rules hand out what it found, so each code has one place of origin.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipec.compiler.checks_base import PipelineContext, PipelineRule
from pipec.compiler.components import validate_config
from pipec.compiler.diagnostics import Diagnostic
from pipec.compiler.values import duplicate_keys, pairs_to_python


def component_types(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """P204 unknown type, P205 role not supported, P206 failed to load, P207 not a component, P106/P107."""
    for _, diagnostics in ctx.resolutions:
        yield from diagnostics


def configs(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """P201-P203 and P208 against the component's Config model; P403/P404 whatever the type."""
    for decl, (impl, _) in zip(ctx.pipeline.nodes, ctx.resolutions):
        yield from duplicate_keys(decl.config, f"the config of '{decl.name}'")
        if impl is not None:
            yield from validate_config(decl, impl)
        else:
            yield from pairs_to_python(decl.config).problems


def options(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """P209-P211, P403, P405 for `with { ... }`."""
    for _, diagnostics in ctx.options:
        yield from diagnostics


def settings(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """P401, P402, P403, P405 for the pipeline's settings."""
    yield from ctx.settings[1]


RULES: tuple[PipelineRule, ...] = (component_types, configs, options, settings)
