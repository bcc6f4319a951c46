"""Render model -> Python source, through jinja2 templates (layout only; decisions live in plan.py)."""

from __future__ import annotations

from functools import lru_cache

import jinja2

from pipec.compiler.plan import RenderModel


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pipec.compiler", "templates"),
        autoescape=False,  # the output is Python, not HTML; values arrive already repr()-ed
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def render_runner(model: RenderModel, template: str = "runner.py.j2") -> str:
    source = _environment().get_template(template).render(m=model)
    # A last safety net: what we write must at least be valid Python.
    compile(source, f"<pipec runner {model.module_name}>", "exec")
    return source
