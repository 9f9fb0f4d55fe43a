"""The documentation site: op pages generated from the code, runnable pages that run, figures that
match their code, and a mkdocs.yml that lists every page. (``mkdocs build --strict`` itself runs
in CI after the tests; these checks need no MkDocs.)"""

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

import jtape.ops
from jtape.ops import OP_CLASSES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def load(name):
    spec = importlib.util.spec_from_file_location(f"jtape_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_ops, hooks, gen_figures, gen_notebooks = load("gen_ops"), load("hooks"), load("gen_figures"), load("gen_notebooks")
docmath = load("docmath")


def all_op_classes():
    return dict(OP_CLASSES)


def test_generator_lists_every_op_class_with_its_derivation_and_rule():
    pages = gen_ops.family_pages()
    listed = {cls for members in gen_ops.families().values() for _, cls in members}
    assert listed == set(all_op_classes().values())
    index = pages["ops/index.md"]
    for method, cls in all_op_classes().items():
        family = cls.__module__.rsplit(".", 1)[-1]
        page = pages[f"ops/{family}.md"]
        assert f"## {cls.__name__}\n" in page
        assert f"Recorded by `backend.{method}(...)`" in page
        assert docmath.docstring_to_markdown(inspect.getdoc(cls)) in page    # the derivation, typeset
        rule = gen_ops.rule_method(cls)
        assert inspect.getsource(rule).strip().splitlines()[-1].strip() in page           # the rule's code
        assert f"| `{method}` | [`{cls.__name__}`]({family}.md#{cls.__name__.lower()}) |" in index
    assert docmath.docstring_to_markdown(inspect.getdoc(jtape.ops.Operation)) in index
    for page in pages.values():                                              # no reST literals shown as text
        assert "``" not in re.sub(r"^```\w*\n.*?^```\n", "", page, flags=re.S | re.M)


def test_pages_follow_the_docstrings(monkeypatch):
    from jtape.ops import MulOp
    monkeypatch.setattr(MulOp, "__doc__", "out = a * b.   Derivation: a fresh one, written today.")
    assert "**Derivation:** a fresh one, written today." in gen_ops.family_pages()["ops/elementwise.md"]


def test_mkdocs_yml_lists_every_page_and_runs_the_generators():
    config = (ROOT / "mkdocs.yml").read_text()
    nav = re.findall(r"^\s+- (?:[^:\n]+: )?([\w/-]+\.md)$", config, re.M)
    generated = gen_ops.nav() + gen_notebooks.nav()
    assert len(gen_notebooks.nav()) >= 3
    assert sorted(p for p in nav if p.startswith(("ops/", "notebooks/"))) == sorted(generated)
    for page in nav:
        if page not in generated:
            assert (DOCS / page).is_file(), page
    handwritten = {str(p.relative_to(DOCS)) for p in DOCS.glob("**/*.md")}
    assert handwritten <= set(nav), handwritten - set(nav)
    assert "- docs/gen_ops.py" in config and "- docs/hooks.py" in config and "strict: true" in config
    assert "- docs/gen_notebooks.py" in config and "- docs/math_assets.py" in config
    assert "pymdownx.arithmatex" in config and "font: false" in config      # maths, and nothing from a CDN


def test_runnable_pages_run_end_to_end_and_figures_match_their_code():
    pages = gen_figures.runnable_pages()
    names = [p.name for p in pages]
    assert {"tutorial.md", "inspect.md", "getting-started.md"} <= set(names)
    for page in pages:
        dots = gen_figures.collect(page)                                   # runs every block, as the build does
        assert sorted(dots) == sorted(gen_figures.figure_names(page))
        text = page.read_text()
        for name, dot in dots.items():
            svg = (DOCS / "figures" / f"{name}.svg").read_text()
            assert f"figures/{name}.svg" in text
            for label in re.findall(r'O\d+ \[label="(\[\d+\] \w+)', dot):    # every op of the code is drawn
                assert label in svg, (name, label)
    tutorial = (DOCS / "tutorial.md").read_text()
    for section in ("y = x²", "The tape is a list", "The reverse walk", "Fan-out", "Broadcasting", "Matrix mult",
                    "Convolution"):
        assert section in tutorial


def test_run_blocks_inserts_output_and_names_a_failing_block():
    page = "intro\n```python\nx = 2\nprint(x * 21)\n```\ntext\n```python\nprint(x + 1)\n```\n```bash\nls\n```\n"
    out = hooks.run_blocks(page, "demo.md")
    assert out == ("intro\n```python\nx = 2\nprint(x * 21)\n```\n```text title=\"prints\"\n42\n```\ntext\n"
                   "```python\nprint(x + 1)\n```\n```text title=\"prints\"\n3\n```\n```bash\nls\n```\n")
    with pytest.raises(hooks.SnippetError, match=r"demo.md: python block 2 raised:\nprint\(y\)") as err:
        hooks.run_blocks("```python\nx = 1\n```\n```python\nprint(y)\n```\n", "demo.md")
    assert "NameError: name 'y' is not defined" in str(err.value)


def test_hook_only_runs_pages_that_opt_in():
    class Page:
        meta, file = {}, type("F", (), {"src_uri": "plain.md"})()

    text = "```python\nraise SystemExit('must not run')\n```\n"
    assert hooks.on_page_markdown(text, Page(), None, None) == text
