"""Generate the "Ops and their derivations" pages from the code, at build time (mkdocs-gen-files).

One page per op family — per module of ``jtape.ops`` that defines an op's ``Operation`` class —
holding, for each class, the op that records it (its signature), its docstring (the derivation)
typeset — the plain-Unicode maths of the docstring turned into LaTeX by ``docs/docmath.py`` — and
the source of its rule (``vjp``). Nothing is copied by hand, so the pages cannot drift from the
code. ``ops/index.md`` lists every registered op (those without a gradient and the composite ones
too) and the contract every rule follows (``Operation``).

    python docs/gen_ops.py OUT_DIR     # writes the pages to OUT_DIR (for a look without mkdocs)
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import jtape.ops
from jtape.ops import OP_CLASSES, Operation, base
from jtape.tensor import REGISTRY

sys.path.insert(0, str(Path(__file__).resolve().parent))       # docs/: the maths converter (docmath, unimath)
from docmath import docstring_to_markdown, inline_markdown  # noqa: E402


def op_classes() -> dict[str, type]:
    """Op name -> Operation class, for every op with a rule (gradient kernels included)."""
    return dict(OP_CLASSES)


def rule_method(cls: type):
    """The method holding a class's rule: ``vjp`` (built-in ops) or ``backward`` (hand-written)."""
    return cls.vjp if cls.vjp is not Operation.vjp else cls.backward


# Teaching order of the families; a module not named here comes after these, alphabetically.
ORDER = ["elementwise", "piecewise", "unary", "activation", "reduce", "shape", "layout", "indexing", "select", "linalg",
         "conv", "pool", "loss", "compare"]


def families() -> dict[str, list[tuple[str, type]]]:
    """Module name (``elementwise``, ``unary``, ...) -> [(backend method, class)], in source order."""
    grouped: dict[str, list[tuple[str, type]]] = {}
    for method, cls in op_classes().items():
        grouped.setdefault(cls.__module__.rsplit(".", 1)[-1], []).append((method, cls))
    for members in grouped.values():
        members.sort(key=lambda mc: inspect.getsourcelines(mc[1])[1])
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(grouped.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0])))


def _title(module_name: str) -> str:
    doc = inspect.getdoc(sys.modules[f"jtape.ops.{module_name}"]) or module_name
    return doc.split("\n\n")[0].replace("\n", " ").rstrip(".").replace("``", "`")


def _fence(text: str, lang: str = "text") -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"


def _class_section(method: str, cls: type) -> str:
    fused = "yes — one compiled kernel on JaxBackend" if getattr(cls, "fuse", False) else "no"
    second = "yes" if getattr(cls, "differentiable_backward", True) else "no"
    rule = textwrap.dedent(inspect.getsource(rule_method(cls)))
    signature = f"{method}{REGISTRY[method].signature}" if method in REGISTRY else method
    path = inspect.getsourcefile(cls)
    where = Path(path).relative_to(Path(jtape.ops.__file__).parent.parent.parent) if path else cls.__module__
    return "\n".join([
        f"## {cls.__name__}", "",
        f"Recorded by `backend.{method}(...)` · defined in `{where}` · fused rule: {fused} · "
        f"differentiable rule (second order): {second}", "",
        f"Signature: `{signature}`", "",
        "*The class docstring, with its maths typeset:*", "",
        docstring_to_markdown(inspect.getdoc(cls) or ""),
        f"**Rule** (`{rule_method(cls).__name__}`, the code that runs):", "",
        _fence(rule, "python"),
    ])


def family_pages() -> dict[str, str]:
    """Page path (under ``docs/``) -> Markdown, for ``ops/index.md`` and one page per family."""
    pages: dict[str, str] = {}
    rows = []
    for module_name, members in families().items():
        title = _title(module_name)
        intro = (inspect.getdoc(sys.modules[f"jtape.ops.{module_name}"]) or "").split("\n\n", 1)[1:]
        body = [f"# {title}", "", "*Generated from the docstrings and code of "
                f"`jtape/ops/{module_name}.py` when the site was built.*", ""]
        body += [docstring_to_markdown(intro[0])] if intro else []
        body += [_class_section(method, cls) for method, cls in members]
        pages[f"ops/{module_name}.md"] = "\n".join(body)
        for method, cls in members:
            summary = inline_markdown((inspect.getdoc(cls) or "").split("\n")[0]).replace("|", "\\|")
            rows.append(f"| `{method}` | [`{cls.__name__}`]({module_name}.md#{cls.__name__.lower()}) | {summary} |")
    for name, d in REGISTRY.items():
        if d.operation is None:
            what = "composite: written with other ops, no rule of its own" if d.composite else "no gradient"
            summary = inline_markdown(d.doc.split("\n")[0]).replace("|", "\\|")
            rows.append(f"| `{name}` | {what} | {summary} |")
    index = ["# Ops and their derivations", "",
             "Every differentiable op is one `Operation` class with a hand-derived backward rule (its "
             "vector-Jacobian product); the derivation is the class's docstring. These pages are generated "
             "from the code each time the site is built.", "",
             "## The contract every rule follows", "",
             docstring_to_markdown(inspect.getdoc(base) or ""), docstring_to_markdown(inspect.getdoc(Operation) or ""),
             "## Every op", "", "| Backend method | Operation | what it computes |", "|---|---|---|", *rows, ""]
    pages["ops/index.md"] = "\n".join(index)
    return pages


def nav() -> list[str]:
    """The generated pages in the order the site lists them."""
    return ["ops/index.md"] + [f"ops/{name}.md" for name in families()]


def write(opener) -> None:
    for path, text in family_pages().items():
        with opener(path, "w") as f:
            f.write(text)


if __name__ == "<run_path>":          # run by mkdocs-gen-files during `mkdocs build`
    import mkdocs_gen_files
    write(mkdocs_gen_files.open)
elif __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "site-ops")

    def _open(path: str, mode: str):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        return open(out / path, mode, encoding="utf-8")

    write(_open)
    print(f"wrote {len(family_pages())} pages under {out}/")
