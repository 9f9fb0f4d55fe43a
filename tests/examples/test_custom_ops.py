"""The custom-op examples (examples/custom_ops/) run, match jax and pass check_operation; and
``autodiff.custom_op`` records, passes through and fails as documented."""

from __future__ import annotations

import importlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import NumpyBackend
from jtape.tensor.errors import BackendError

CUSTOM_OPS = Path(__file__).resolve().parents[2] / "examples" / "custom_ops"


@pytest.fixture
def load(monkeypatch):
    monkeypatch.syspath_prepend(str(CUSTOM_OPS))
    return importlib.import_module


@pytest.mark.parametrize("backend_name", ["jax", "numpy"])
def test_logsumexp_example(load, backend_name):
    result = load("logsumexp").main(["--quiet", "--backend", backend_name])
    assert result["value_error"] < 1e-3 and result["grad_error"] < 1e-5        # float32, values near 1000
    assert all(r.ok for r in result["reports"])
    assert {c.dtype for c in result["reports"][0].checks} == {"float32", "float64"}


@pytest.mark.parametrize("backend_name", ["jax", "numpy"])
def test_huber_example(load, backend_name):
    result = load("huber").main(["--quiet", "--backend", backend_name, "--steps", "60"])
    assert result["grad_error"] < 1e-5 and all(r.ok for r in result["reports"])
    w, b = result["fit"]
    assert abs(w - 2) < 0.2 and abs(b + 1) < 0.2         # the outliers (+30) barely move the robust fit


def _hvp_check(fn, jnp_fn, arrays, backend):
    """Hessian-vector product through the custom op (create_graph=True) against jax."""
    rng = np.random.default_rng(4)
    xs = [tensor.from_numpy(a, backend) for a in arrays]
    vs = [rng.standard_normal(a.shape) for a in arrays]
    tape = backend.tape()
    y = fn(*xs)
    grads = tape.gradient(y, xs, create_graph=True)
    dots = [(g * tensor.from_numpy(v, backend)).sum() for g, v in zip(grads, vs)]     # Σ_i ⟨∂y/∂x_i, v_i⟩
    dot = dots[0]
    for d in dots[1:]:
        dot = dot + d
    hvps = tape.gradient(dot, xs, unconnected_gradients="zero")
    _, expected = jax.jvp(jax.grad(jnp_fn, argnums=tuple(range(len(arrays)))), tuple(arrays), tuple(vs))
    for got, want in zip(hvps, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_second_order_through_the_custom_ops(load, backend):
    lse = load("logsumexp")
    huber = load("huber")
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal(3)
    _hvp_check(lambda x_: (lse.logsumexp(backend, x_, dim=1) * tensor.from_numpy(w, backend)).sum(),
               lambda a: jnp.sum(jax.nn.logsumexp(a, axis=1) * w), [x], backend)
    pred, target = rng.standard_normal((4, 3)) * 2, rng.standard_normal((1, 3))
    _hvp_check(lambda p, t: huber.huber_loss(backend, p, t, delta=1.0) * 3.0,
               lambda p, t: huber.reference(p, t) * 3.0, [pred, target], backend)


def test_custom_op_records_one_op_and_follows_the_inputs_kind(load):
    lse = load("logsumexp")
    backend = autodiff.new(NumpyBackend())
    x = tensor.from_numpy(np.array([[1.0, 2.0, 3.0]]), backend)
    y = lse.logsumexp(backend, x)
    assert isinstance(y, tensor.Tensor) and [op.name for op in backend.tape().operations()] == ["LogSumExp"]
    raw = lse.logsumexp(backend, x.raw(), -1, True)                   # RawTensor in, RawTensor out
    assert isinstance(raw, tensor.RawTensor) and raw.shape == (1, 1)
    assert lse.logsumexp.op_class is lse.LogSumExpOp
    np.testing.assert_allclose(y.numpy(), np.log(np.exp([1.0, 2.0, 3.0]).sum()))
    plain = NumpyBackend()                                             # a plain backend: just the forward
    assert isinstance(lse.logsumexp(plain, plain.from_numpy(np.ones((2, 2))), 0), tensor.RawTensor)
    data = tensor.from_numpy(np.ones((2, 2)), backend, requires_grad=False)
    n = backend.tape().num_ops()
    out = lse.logsumexp(backend, data)                                 # a constant in, a constant out
    assert backend.tape().num_ops() == n and not out.requires_grad


def test_custom_op_by_hand_records_the_same(load):
    lse = load("logsumexp")
    backend = autodiff.new(NumpyBackend())
    x = tensor.from_numpy(np.array([0.5, -1.0, 2.0]), backend)
    out = lse.logsumexp.forward(backend.inner(), x.raw(), 0)
    backend.tape().record(lse.LogSumExpOp(out, x.raw(), 0))
    tensor.Tensor(out, backend).backward()
    e = np.exp([0.5, -1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), e / e.sum())


def test_custom_op_errors(load):
    lse = load("logsumexp")
    backend = autodiff.new(NumpyBackend())
    x = tensor.from_numpy(np.ones((2, 3)), backend)
    with pytest.raises(TypeError, match=r"logsumexp: got a Tensor as the first argument; expected the backend "
                                        r"\(call it as logsumexp\(backend, x, ...\)\)"):
        lse.logsumexp(x)
    with pytest.raises(BackendError, match="logsumexp: got a Tensor on AutodiffBackend"):
        lse.logsumexp(autodiff.new(NumpyBackend()), x)

    @autodiff.custom_op(lse.LogSumExpOp)
    def split(backend, x):
        return backend.chunk(x, 3, 1)

    with pytest.raises(TypeError, match="split: the forward returned list; expected one RawTensor"):
        split(backend, x)
    with pytest.raises(TypeError, match="custom_op: got 3; expected an Operation subclass"):
        autodiff.custom_op(3)
