"""Render the notebooks in ``docs/notebooks/`` as pages of the site, executed at build time.

Each ``docs/notebooks/NAME.ipynb`` (kept without outputs in the repository) is run top to bottom
with ``nbclient`` in a fresh kernel inside a temporary directory, and written as the page
``notebooks/NAME.md``: markdown cells as they are (their maths goes to KaTeX like every page's),
code cells as Python blocks, and under each what it printed, its results and its figures (PNG
and SVG files beside the page). A cell that raises fails the build, naming the notebook. The
``.ipynb`` itself is copied into the site, and each page links to it for download.
``pytest`` runs the same notebooks (nbmake), so CI fails on a broken one either way.

    python docs/gen_notebooks.py OUT_DIR     # writes the pages to OUT_DIR (for a look without mkdocs)
"""

from __future__ import annotations

import base64
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
TIMEOUT_S = 300          # per cell


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def nav() -> list[str]:
    """The generated pages, in the order of the notebooks' file names."""
    return [f"notebooks/{p.stem}.md" for p in notebook_paths()]


def execute(path: Path) -> Any:
    """The notebook, run top to bottom in a fresh python3 kernel (cwd: a temporary directory)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    book = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="jtape-nb-") as tmp:
        client = NotebookClient(book, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": tmp}})
        try:
            client.execute()
        except CellExecutionError as e:
            raise RuntimeError(f"notebook {path.name} failed while building the docs:\n{e}") from e
    return book


def to_markdown(book: Any, stem: str, write_file: Callable[[str, bytes], None]) -> str:
    """The executed notebook as one Markdown page; figures go through ``write_file(path, bytes)``."""
    parts: list[str] = []
    figure = 0
    for k, cell in enumerate(book.cells):
        if cell.cell_type == "markdown":
            text = cell.source
            if k == 0:                                   # after the title: where the page comes from
                text = re.sub(r"^(# .*)$", rf"\1\n\n*This page is the notebook [`{stem}.ipynb`]({stem}.ipynb) — "
                              r"download it and run it in Jupyter — executed when the site was built.*",
                              text, count=1, flags=re.MULTILINE)
            parts.append(text)
            continue
        if cell.cell_type != "code":
            continue
        parts.append(f"```python\n{cell.source.rstrip()}\n```")
        printed = ""                                     # a cell's consecutive prints: one block
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                printed += out.text if isinstance(out.text, str) else "".join(out.text)
                continue
            if printed:
                parts.append(_text_block(printed))
                printed = ""
            if out.output_type == "error":
                raise RuntimeError(f"notebook {stem}: cell {k} raised {out.ename}: {out.evalue}")
            elif out.output_type in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "image/svg+xml" in data or "image/png" in data:
                    figure += 1
                    ext = "svg" if "image/svg+xml" in data else "png"
                    payload = (data["image/svg+xml"].encode() if ext == "svg" else base64.b64decode(data["image/png"]))
                    name = f"{stem}_files/figure-{figure}.{ext}"
                    write_file(f"notebooks/{name}", payload)
                    parts.append(f"![Figure {figure} of the notebook]({name})")
                elif "text/plain" in data:
                    parts.append(_text_block(data["text/plain"]))
        if printed:
            parts.append(_text_block(printed))
    return "\n\n".join(parts) + "\n"


def _text_block(text: str) -> str:
    text = text if isinstance(text, str) else "".join(text)
    return '```text title="output"\n' + text.rstrip("\n") + "\n```"


def write(opener: Callable) -> None:
    for path in notebook_paths():
        def write_file(name: str, payload: bytes) -> None:
            with opener(name, "wb") as f:
                f.write(payload)
        page = to_markdown(execute(path), path.stem, write_file)
        with opener(f"notebooks/{path.stem}.md", "w") as f:
            f.write(page)


if __name__ == "<run_path>":          # run by mkdocs-gen-files during `mkdocs build`
    import mkdocs_gen_files
    write(mkdocs_gen_files.open)
elif __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "site-notebooks")

    def _open(path: str, mode: str):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        return open(out / path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))

    write(_open)
    print(f"wrote {len(notebook_paths())} pages under {out}/")
