"""Every HTML page renders here: report.html, the comparison page and suite.html share one Jinja2 environment
over harness/report/templates, one page shell (base.html), one stylesheet (style.css, inlined: pages stay
self-contained) and one escaping. Templates autoescape; Python builds markup only through `esc` and `markup`,
which escape the same way, so a string from a history (ids, process names, fault names, paths) is escaped
wherever it lands."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"


def text(x: Any) -> Any:
    """How a value reads on a page: nothing for None, JSON for lists and dicts, anything else as it is
    (Markup stays Markup). Every {{ expression }} goes through it before autoescaping."""
    if x is None:
        return ""
    if isinstance(x, list | dict):
        return json.dumps(x, ensure_ascii=False, default=str)
    return x


def esc(x: Any) -> Markup:
    """`x` as HTML text (element content and quoted attributes), as templates escape it."""
    return escape(text(x))


def markup(trusted: str, *args: Any) -> Markup:
    """`trusted` markup with its {} fields filled by `args`, each escaped by `esc` (Markup passes as is)."""
    return Markup(trusted).format(*(esc(a) for a in args))


@cache
def environment() -> Environment:
    """The one environment, built on first use. Undefined names raise: a misspelt field must fail the tests,
    not vanish from a page."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      finalize=text, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      bytecode_cache=_bytecode_cache())
    # the stylesheet goes in as it is written (not parsed as a template: CSS braces are not Jinja's business)
    env.globals["css"] = Markup((TEMPLATES / "style.css").read_text(encoding="utf-8"))
    return env


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    """Compiled templates kept in onceproof's cache (compiling them cost every `onceproof check` about 70 ms);
    Jinja checks each against its template's source. None where the cache cannot be written."""
    from plugin.needs import cache_dir

    where = cache_dir() / "jinja"
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(where)) if os.access(where, os.W_OK) else None


def page(template: str, **context: Any) -> str:
    """The text of `template` (a page extending base.html, or a part of one) rendered with `context`."""
    return environment().get_template(template).render(**context)
