"""Draw the figures of the docs' runnable pages into docs/figures/ (needs Graphviz's ``dot``).

    python docs/gen_figures.py          # after changing a page's code; commit the SVGs it writes

A code block on a ``run: true`` page (see ``docs/hooks.py``) marks a figure with a trailing
comment ``# figure: NAME`` on the line that builds DOT text into the variable ``dot``, e.g.
``dot = tape.to_dot(grads=grads)        # figure: square``. This script runs every such page's
blocks exactly as the docs build does and, after each marked block, renders that ``dot`` to
``docs/figures/NAME.svg`` — so each picture is the graph of the code printed beside it. The SVGs
are committed, so building the docs does not need Graphviz.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
FIGURES = DOCS / "figures"
MARK = re.compile(r"#\s*figure:\s*([\w-]+)")


def _hooks():
    spec = importlib.util.spec_from_file_location("jtape_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runnable_pages() -> list[Path]:
    """The pages whose front matter says ``run: true``."""
    return sorted(p for p in DOCS.glob("**/*.md") if re.match(r"---\n(?:.*\n)*?run:\s*true\n", p.read_text()))


def figure_names(page: Path) -> list[str]:
    """The figures a page's code marks, in order."""
    return MARK.findall(page.read_text())


def collect(page: Path) -> dict[str, str]:
    """Run ``page``'s blocks; return figure name -> DOT text."""
    found: dict[str, str] = {}

    def after(index: int, code: str, namespace: dict) -> None:
        for name in MARK.findall(code):
            found[name] = namespace["dot"]

    _hooks().run_blocks(page.read_text(), page.name, after=after)
    return found


def main() -> int:
    sys.path.insert(0, str(DOCS.parent))
    from jtape.autodiff.views import render_dot
    FIGURES.mkdir(exist_ok=True)
    for page in runnable_pages():
        for name, dot in collect(page).items():
            out = render_dot(dot, FIGURES / f"{name}.svg")
            print(f"{page.name}: wrote {out.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
