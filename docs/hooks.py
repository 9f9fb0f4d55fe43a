"""MkDocs hook: run the Python blocks of a page and show what they print, at build time.

A page opts in with the front matter ``run: true``. Its ```` ```python ```` blocks run in order in
one namespace — the page is one session, as for a reader typing along — inside a temporary
working directory. What a block prints is inserted right after it as a ```` ```text ```` block, so
the printed tapes, traces and gradients on the page are what the code really prints today and
cannot drift from it. A block that raises fails the build, naming the page and the block.

``docs/gen_figures.py`` runs the same blocks (``run_blocks``) to draw the pages' figures.

On every page, a line ``<!-- derivation: jtape.ops.MulOp -->`` is replaced by that object's
docstring, typeset (``docs/docmath.py``: its Unicode maths as LaTeX), in a box — so a page quotes
a rule's derivation from the code rather than copying it — and a line ``<!-- source:
jtape.autodiff.tape.GradientTape.walk -->`` by that function's source code.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import linecache
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))       # docs/: the maths converter (docmath, unimath)
from docmath import docstring_to_markdown  # noqa: E402

FENCE = re.compile(r"^```python\n(.*?)^```[ \t]*\n", re.S | re.M)
DERIVATION = re.compile(r"^<!-- derivation: ([\w.]+) -->[ \t]*$", re.M)
SOURCE = re.compile(r"^<!-- source: ([\w.]+) -->[ \t]*$", re.M)


class SnippetError(RuntimeError):
    """A code block on a ``run: true`` page raised."""


def run_blocks(markdown: str, name: str, after: Callable[[int, str, dict], Any] | None = None) -> str:
    """Run every python block of ``markdown``; return it with each block's printed output after it.

    ``after(index, code, namespace)`` is called after each block (gen_figures uses it)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    parts, pos = [], 0
    with tempfile.TemporaryDirectory(prefix="jtape-docs-") as tmp, _cwd(tmp):
        for k, m in enumerate(FENCE.finditer(markdown), start=1):
            code = m.group(1)
            filename = f"<{name}, block {k}>"
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)  # tracebacks show code
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, filename, "exec"), namespace)
            except Exception as e:
                raise SnippetError(f"{name}: python block {k} raised:\n{code}\n{traceback.format_exc()}") from e
            if after is not None:
                after(k, code, namespace)
            parts.append(markdown[pos:m.end()])
            out = printed.getvalue().rstrip()
            if out:
                parts.append('```text title="prints"\n' + out + "\n```\n")
            pos = m.end()
    parts.append(markdown[pos:])
    return "".join(parts)


@contextlib.contextmanager
def _cwd(path: str):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def quote_derivations(markdown: str) -> str:
    """Replace each ``<!-- derivation: module.Name -->`` line with Name's docstring, typeset, in a box."""
    def box(m: re.Match) -> str:
        module, _, name = m.group(1).rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise SnippetError(f"derivation marker names {m.group(1)!r}, which does not import: {e}") from e
        body = docstring_to_markdown(inspect.getdoc(obj) or "")
        indented = "\n".join(("    " + ln) if ln else "" for ln in body.splitlines())
        return f'!!! quote "`{name}`: the derivation in its docstring, typeset"\n\n{indented}\n'
    return DERIVATION.sub(box, markdown)


def _resolve(dotted: str) -> Any:
    """``jtape.autodiff.tape.GradientTape.walk``: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise SnippetError(f"source marker names {dotted!r}, which does not import")


def quote_sources(markdown: str) -> str:
    """Replace each ``<!-- source: dotted.name -->`` line with that function's code, as it is in the
    repository today (shown, not run: a ``py`` block)."""
    def code(m: re.Match) -> str:
        text = inspect.getsource(_resolve(m.group(1)))
        lines = text.splitlines()
        indent = len(lines[0]) - len(lines[0].lstrip())
        return "```py\n" + "\n".join(ln[indent:] for ln in lines) + "\n```"
    return SOURCE.sub(code, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: quote derivations and sources; run the page's blocks when its front matter says
    ``run: true``."""
    markdown = quote_sources(quote_derivations(markdown))
    if not page.meta.get("run"):
        return markdown
    return run_blocks(markdown, page.file.src_uri)
