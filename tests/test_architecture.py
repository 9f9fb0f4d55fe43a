"""The architecture holds: one op, one place (every listing agrees with the registry), clean layers
(read from the imports, including imports inside functions), no module writing another's private
fields, and short files."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import jtape
from jtape.autodiff import AutodiffBackend
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import OPS, REGISTRY, Backend, Tensor

PACKAGE = Path(jtape.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every jtape module a file imports — at the top or inside a function — with the names taken
    from it and the line."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("jtape")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("jtape"):
                found.append((target, [a.name for a in node.names], node.lineno))
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


# What each layer may import from jtape (besides itself).
ALLOWED = {
    "tensor": set(),
    "backends": {"tensor"},
    "ops": {"tensor"},
    "autodiff": {"tensor", "ops", "distributed"},   # jtape.jit places its arrays with distributed.sharding
    "distributed": {"tensor"},
    "nn": {"tensor", "autodiff"},
    "optim": {"tensor", "autodiff", "nn"},
}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_what_they_may(path: Path) -> None:
    layer = _layer(_module_name(path))
    if layer not in ALLOWED:
        return
    for target, names, line in _imports(path):
        other = _layer(target)
        if other == layer or other == "":
            continue
        assert other in ALLOWED[layer], f"{path.name}:{line}: jtape.{layer} imports {target}"
        if other == "autodiff" and layer in ("nn", "optim"):
            # only the public API: `from ..autodiff import name` with name in jtape.autodiff.__all__
            assert target == "jtape.autodiff", f"{path.name}:{line}: {layer} imports autodiff internals ({target})"
            assert set(names) <= set(jtape.autodiff.__all__), f"{path.name}:{line}: {names}"


def test_the_import_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    probe = PACKAGE / "tensor" / "__init__.py"
    found = {t for t, _, _ in _imports(probe)}
    assert "jtape.tensor.registry" in found
    text = "def f():\n    from ..autodiff import backend\n"
    fake = PACKAGE / "tensor" / "_probe_for_test.py"
    try:
        fake.write_text(text)
        assert ("jtape.autodiff", ["backend"], 2) in _imports(fake)
    finally:
        fake.unlink()


def _foreign_private_writes(path: Path) -> list[str]:
    """Assignments ``obj._name = ...`` where obj is not ``self``/``cls``: writing another object's
    private field."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute) and sub.attr.startswith("_") and not sub.attr.startswith("__"):
                    owner = sub.value
                    if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                        bad.append(f"{path.name}:{node.lineno}: {ast.unparse(t)}")
    return bad


def test_no_module_writes_another_objects_private_fields() -> None:
    bad = [line for path in SOURCES for line in _foreign_private_writes(path)]
    assert bad == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_stay_short(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400, f"{path} has more than 400 lines"


def test_docstrings_point_at_nothing_outside_the_repository() -> None:
    for path in SOURCES:
        text = path.read_text()
        for phrase in ("DESIGN.md", "the seed's", "Burn's backends", "TESTING.md", "PERFORMANCE.md"):
            assert phrase not in text, f"{path.name} refers to {phrase!r}, which is not in the repository"


# -- one op, one place: every listing agrees with the registry --------------------------------------
def _params(sig: inspect.Signature) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_the_backend_protocol_lists_exactly_the_registered_ops() -> None:
    assert sorted(OPS) == sorted(REGISTRY), "tensor/backend.py and the registry disagree"
    for name, op in REGISTRY.items():
        listed = inspect.signature(getattr(Backend, name))
        assert _params(listed) == _params(op.signature), f"{name}: protocol {listed} vs registry {op.signature}"


@pytest.mark.parametrize("backend", [NumpyBackend(), JaxBackend("cpu"), AutodiffBackend(NumpyBackend())],
                         ids=["numpy", "jax", "autodiff"])
def test_every_backend_has_every_op_with_its_signature(backend) -> None:
    assert isinstance(backend, Backend)
    for name, op in REGISTRY.items():
        method = getattr(backend, name)
        assert _params(inspect.signature(method)) == _params(op.signature), name
        assert op.doc.splitlines()[0] in (method.__doc__ or ""), f"{name}: the method does not carry the op's doc"


def test_every_op_with_a_tensor_first_is_a_tensor_method() -> None:
    for name, op in REGISTRY.items():
        if op.method:
            assert callable(getattr(Tensor, name, None)), f"Tensor has no method {name}"


def test_every_rule_is_built_from_named_statics() -> None:
    """An op's record holds everything needed to run it again: its Operation saves exactly the
    op's static arguments, by name."""
    for name, op in REGISTRY.items():
        if op.operation is not None:
            assert set(op.operation.static_names()) == set(op.static_names), (
                f"{op.operation.__name__} saves {op.operation.static_names()}; the op's statics are {op.static_names}")
