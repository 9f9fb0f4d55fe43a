"""docs/unimath.py and docs/docmath.py: the docstrings' plain-Unicode maths -> LaTeX for the site, on every
op's docstring."""

import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest

import jtape.ops
from jtape.ops import OP_CLASSES, Operation, base

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS))


def load(name):
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


unimath, docmath = load("unimath"), load("docmath")

MATH_SPAN = re.compile(r"\$\$\n(.*?)\n\$\$|\$([^$\n]+)\$", re.DOTALL)
CODE_SPAN = re.compile(r"`[^`]*`")


def documented():
    """Every docstring the op pages typeset: each Operation class, the contract, the family modules."""
    classes = {**OP_CLASSES, **getattr(jtape.ops, "GRADIENT_OP_CLASSES", {})}
    items = {cls.__name__: inspect.getdoc(cls) for cls in classes.values()}
    items["jtape.ops.base"] = inspect.getdoc(base)
    items["Operation"] = inspect.getdoc(Operation)
    for cls in classes.values():
        module = sys.modules[cls.__module__]
        items[module.__name__] = inspect.getdoc(module)
    return items


@pytest.mark.parametrize(("unicode", "latex"), [
    ("∂out_i/∂a_i = 1", r"\frac{\partial \mathrm{out}_{i}}{\partial a_{i}} = 1"),
    ("∂ℒ/∂k[o,c,a,b]", r"\frac{\partial \mathcal{L}}{\partial k[o,c,a,b]}"),
    ("Σ_k e^{x_k}", r"\sum _{k}\, e^{x_{k}}"),
    ("Σⱼ gⱼ", r"\sum _{j}\, g_{j}"),
    ("-a_i/b_i²", r"-a_{i}/b_{i}^{2}"),
    ("(g @ bᵀ)_ik", r"(g \mathbin{@} b^{\top})_{ik}"),
    ("1/(2√x)", r"1/(2\sqrt{x})"),
    ("e^-x", r"e^{-x}"),
    ("x^(-1/2)", r"x^{-1/2}"),
    ("⟨h, out⟩", r"\langle h, \mathrm{out} \rangle"),
    ("grad_x_j", r"\mathrm{grad}_{x_{j}}"),
    ("grad_xₖ", r"\mathrm{grad}_{x_{k}}"),
    ("sum_dim(g, dim, keep_dim=True)", r"\operatorname{sum\_dim}(g, \mathrm{dim}, \mathrm{keep\_dim}=\mathrm{True})"),
    ("-½ · out", r"-\tfrac{1}{2} \cdot \mathrm{out}"),
    ("δ_ij", r"\delta _{ij}"),
    ("a.shape", r"a.\mathrm{shape}"),
    ("a   b", r"a \qquad b"),
])
def test_to_latex_examples(unicode, latex):
    assert unimath.to_latex(unicode) == latex


def test_segments_keep_prose_as_prose():
    got = docmath.segments("Derivation: ∂out/∂x = 1, so the VJP passes g through, with keep_dim.")
    assert got == [("prose", "Derivation: "), ("math", "∂out/∂x = 1"),
                   ("prose", ", so the VJP passes g through, with "), ("code", "keep_dim"), ("prose", ".")]
    assert docmath.segments("Where a or b was broadcast (copied), the adjoint sums") == [
        ("prose", "Where a or b was broadcast (copied), the adjoint sums")]
    assert docmath.segments("the inputs' shapes and x's slab") == [("prose", "the inputs' shapes and x's slab")]


def test_docstring_to_markdown_makes_indented_formulas_display_maths():
    doc = "out = a * b.\n\nDerivation: ∂out/∂a = b, so\n    grad_a = g * b      grad_b = g * a\nSaves: a, b."
    assert docmath.docstring_to_markdown(doc) == (
        "$\\mathrm{out} = a \\cdot b$.\n\n**Derivation:** $\\frac{\\partial \\mathrm{out}}{\\partial a} = b$, so\n\n"
        "$$\n\\mathrm{grad}_{a} = g \\cdot b \\qquad \\mathrm{grad}_{b} = g \\cdot a\n$$\n\n**Saves:** a, b.\n")
    assert docmath.inline_markdown("``g = ∂ℒ/∂out`` and ``None``") == \
        r"$g = \frac{\partial \mathcal{L}}{\partial \mathrm{out}}$ and `None`"


@pytest.mark.parametrize("name", sorted(documented()))
def test_every_docstring_typesets_cleanly(name):
    """No raw $ or reST backticks, all maths ASCII LaTeX, and no Unicode maths left in the prose."""
    markdown = docmath.docstring_to_markdown(documented()[name])
    assert "``" not in markdown, markdown
    spans = [display or inline for display, inline in MATH_SPAN.findall(markdown)]
    assert spans or not name.endswith("Op"), name                       # every rule's derivation has maths
    for latex in spans:
        assert latex.isascii(), (name, latex)                          # every symbol became a command
        assert "$" not in latex and latex.count("{") == latex.count("}"), (name, latex)
        assert not re.search(r"_\{[^{}]*\}_\{|\^\{[^{}]*\}\^\{", latex), (name, latex)   # no double sub/sup
    prose = CODE_SPAN.sub("", MATH_SPAN.sub("", markdown))
    assert "$" not in prose, (name, prose)
    leftover = sorted(set(prose) & unimath.MATH_CHARS)
    assert not leftover, (name, leftover, prose)
