"""Drawings and traces a learner reads: values and gradients in small nodes, statistics for large
tensors, parameters named by their module path, inline display in notebooks, and a clear error
(never an empty picture) after a backward released the tape."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from jtape import autodiff, nn, tensor
from jtape.autodiff import views
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor.errors import TapeError


@pytest.fixture(params=["jax", "numpy"])
def backend(request):
    inner = JaxBackend("cpu") if request.param == "jax" else NumpyBackend()
    return autodiff.new(inner, defer=False)


def _model(backend):
    return nn.Sequential(nn.Linear(16, 32, backend, seed=0), nn.ReLU(), nn.Linear(32, 2, backend, seed=1))


def _labels(dot: str) -> dict[str, str]:
    """Node id -> its label text (with DOT's \\n as newlines)."""
    found = re.finditer(r'^\s+(T\d+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M)
    return {m[1]: m[2].replace("\\n", "\n") for m in found}


def test_small_nodes_show_data_and_grad_like_micrograd(backend):
    a = autodiff.label(tensor.from_slice([2.0, -3.0], (2,), backend), "a")
    b = autodiff.label(a * a, "b")
    loss = autodiff.label(b.sum(), "loss")
    loss.backward(retain_graph=True)
    labels = list(_labels(backend.tape().to_dot()).values())
    assert "a\n(2,) float32\ndata [ 2., -3.]\ngrad [ 4., -6.]" in labels
    assert "b\n(2,) float32\ndata [4., 9.]" in labels                     # not a leaf: no .grad kept
    grads = autodiff.backward(loss, backend)                               # a gradient map shows every grad
    labels = list(_labels(backend.tape().to_dot(grads)).values())
    assert "b\n(2,) float32\ndata [4., 9.]\ngrad [1., 1.]" in labels
    assert "loss\n() float32\ndata 13.\ngrad 1." in labels


def test_large_nodes_show_shape_and_grad_statistics_not_walls(backend):
    model = _model(backend)
    x = tensor.from_numpy(np.ones((4, 16), np.float32), backend, requires_grad=False)
    loss = model(x).sum()
    grads = autodiff.backward(loss, backend)
    labels = _labels(backend.tape().to_dot(grads))
    weight = next(text for text in labels.values() if text.startswith("0.weight"))
    assert weight.startswith("0.weight\n(32, 16) float32\ngrad (32, 16): mean ")
    assert "data" not in weight and "std" in weight and "\n" not in weight.split("grad ")[1]
    small = next(text for text in labels.values() if text.startswith("2.bias"))
    assert "data" in small and "grad [4., 4.]" in small


def test_parameters_are_named_by_module_path_in_tables_drawings_and_traces(backend):
    model = _model(backend)
    model[0](tensor.from_numpy(np.ones((1, 16), np.float32), backend, requires_grad=False))   # a part first
    backend.tape().clear()
    x = tensor.from_numpy(np.ones((4, 16), np.float32), backend, requires_grad=False)
    loss = model(x).sum()
    table = backend.tape().summary()
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert name in table
        assert f'label="{name}\\n' in backend.tape().to_dot()
    assert "leaf1" not in table                     # parameters are never leafN once the model ran
    events = []
    loss.backward(trace=events.append)
    assert {e.tensor for e in events if e.kind == "leaf"} == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_a_label_the_user_gave_is_kept(backend):
    model = _model(backend)
    autodiff.label(model[0].weight, "W1")
    model(tensor.from_numpy(np.ones((2, 16), np.float32), backend, requires_grad=False))
    assert model[0].weight.raw().name == "W1" and model[2].weight.raw().name == "2.weight"


def test_names_survive_optimizer_steps():
    from jtape import optim
    backend = autodiff.new(JaxBackend("cpu"))
    model = _model(backend)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = tensor.from_numpy(np.ones((2, 16), np.float32), backend, requires_grad=False)
    for _ in range(2):
        model(x).sum().backward()
        opt.step()
        opt.zero_grad()
    assert [p.raw().name for p in model.parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_drawing_after_a_releasing_backward_raises_with_the_fix(backend):
    x = tensor.from_slice([1.0, 2.0], (2,), backend)
    (x * x).sum().backward()
    for draw in (backend.tape().to_dot, backend.tape().draw):
        with pytest.raises(TapeError, match=r"the last backward released its 2 ops; draw it before that backward, "
                                            r"or run the backward with retain_graph=True"):
            draw()
    y = (x * 3.0).sum()                            # a new recording draws again
    assert "MulScalar" in backend.tape().to_dot()
    y.backward(retain_graph=True)
    assert "grad [5., 7.]" in backend.tape().to_dot()          # x.grad: 2x from the first backward, + 3


def test_drawing_displays_inline_in_a_notebook(backend, monkeypatch):
    x = autodiff.label(tensor.from_slice([1.0, 2.0], (2,), backend), "x")
    _ = x * x
    drawing = backend.tape().draw()
    assert isinstance(drawing, views.Drawing) and str(drawing) == drawing.dot == backend.tape().to_dot()
    if shutil.which("dot") is not None:
        svg = drawing._repr_svg_()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and ">x</text>" in svg
        assert drawing._repr_html_() == svg
    monkeypatch.setattr(views.shutil, "which", lambda name: None)          # no Graphviz: the DOT text
    assert drawing._repr_svg_() is None
    html = drawing._repr_html_()
    assert html.startswith("<pre>digraph &quot;tape&quot; {") and "x\\n(2,) float32" in html
