"""Gradients of gradients (``create_graph=True``): second derivatives and Hessian-vector products
of every differentiable op, against ``jax.jvp(jax.grad(f))`` and ``jax.hessian``."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.ops import Conv2DInputGradOp, Conv2DKernelGradOp, MaxPool2DGradOp, NarrowOp, Operation, ScatterAddOp
from jtape.tensor import REGISTRY
from jtape.tensor.errors import TapeError
from jtape.testing import check_operation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spec import SPECS, grad_indices, rng_for  # noqa: E402

INNERS = {"numpy": NumpyBackend(), "jax": JaxBackend("cpu")}
N_JAX = 2        # the jax inner backend runs the first samples of each op (its kernels compile per shape)


def _cases():
    cases = []
    for spec in SPECS:
        if not spec.grad:
            continue
        samples = [s for s in spec.samples if s.grad]
        for inner in INNERS:
            for sample in samples[:N_JAX] if inner == "jax" else samples:
                cases.append(pytest.param(spec, sample, inner, id=f"{spec.name}-{sample.id}-{inner}"))
    return cases


def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


_oracles: dict = {}


def _oracle(spec, sample, arrays, us, vs):
    """(jax.grad, jax.jvp(jax.grad)) of L(x) = Σ ⟨u, ref(x)⟩ at x, in direction v (float64)."""
    key = (spec.name, sample.id)
    if key not in _oracles:
        diff = grad_indices(spec, sample)

        def loss(*primals):
            full = list(arrays)
            for i, p in zip(diff, primals):
                full[i] = p
            outs = as_list(spec.ref(*full, **sample.kwargs))
            return sum(jnp.sum(jnp.asarray(u, jnp.float64) * o.astype(jnp.float64)) for u, o in zip(us, outs))

        argnums = tuple(range(len(diff)))
        hvp = jax.jit(lambda p, t: jax.jvp(jax.grad(loss, argnums=argnums), p, t))   # one compile beats eager
        grads, hvps = hvp(tuple(arrays[i] for i in diff), tuple(vs))
        _oracles[key] = ([np.asarray(g) for g in grads], [np.asarray(h) for h in hvps])
    return _oracles[key]


@pytest.mark.parametrize("spec, sample, inner_name", _cases())
def test_hessian_vector_product_matches_jax(spec, sample, inner_name):
    rng = rng_for(f"hvp-{spec.name}-{sample.id}")
    arrays = spec.make_inputs(sample, "float64", rng)
    inner = INNERS[inner_name]
    backend = autodiff.new(inner)
    tensors = [inner.from_numpy(a) for a in arrays]
    outs = as_list(spec.run(backend, tensors, sample.kwargs))
    us = [rng.standard_normal(tuple(o.shape)).astype(o.dtype.numpy) for o in outs]
    diff = grad_indices(spec, sample)
    vs = [rng.standard_normal(arrays[i].shape) for i in diff]

    tape = backend.tape()
    grads = tape.walk({o: inner.from_numpy(u) for o, u in zip(outs, us)}, backend, create_graph=True)
    # L2 = Σ_i ⟨g_i, v_i⟩, built from recorded ops; its gradient is the Hessian of L1 times v.
    terms = [backend.sum(backend.mul(grads[tensors[i]], inner.from_numpy(v))) for i, v in zip(diff, vs)]
    total = terms[0]
    for t in terms[1:]:
        total = backend.add(total, t)
    second = tape.walk({total: inner.full((), 1, "float64")}, backend)

    expected_grads, expected_hvps = _oracle(spec, sample, arrays, us, vs)
    for k, i in enumerate(diff):
        what = f"{spec.name} {sample.id} on autodiff({inner_name}), input {i}"
        _close(grads[tensors[i]], expected_grads[k], f"{what}: first derivative")
        h = second.get(tensors[i])
        got = np.zeros(arrays[i].shape) if h is None else np.asarray(h.data)
        _close(got, expected_hvps[k], f"{what}: Hessian-vector product")


def _close(got, expected, what, rtol=1e-12):
    got = np.asarray(got.data if hasattr(got, "data") else got, np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    if expected.size == 0:
        return
    scale = max(float(np.max(np.abs(expected))), 1.0)
    err = float(np.max(np.abs(got - expected)))
    assert err <= rtol * scale, (f"{what}: max error {err:.3g} > {rtol:g} x {scale:.3g}\n"
                                 f"got:\n{got}\nexpected:\n{expected}")


# -- the gradient kernels' own rules -----------------------------------------------------------------
def _conv_forward(kind):
    return lambda b, a, c, **kw: getattr(b, kind)(a, c, **kw)


KERNEL_CHECKS = {
    "conv2d_input_grad": (Conv2DInputGradOp, _conv_forward("conv2d_input_grad"), [(2, 4, 4, 5), (4, 3, 3, 2)],
                          {"input_shape": (2, 3, 7, 9), "stride": 2, "padding": 1}),
    "conv2d_kernel_grad": (Conv2DKernelGradOp, _conv_forward("conv2d_kernel_grad"), [(2, 3, 7, 9), (2, 4, 4, 5)],
                           {"kernel_shape": (4, 3, 3, 2), "stride": 2, "padding": 1}),
    "max_pool2d_grad": (MaxPool2DGradOp, _conv_forward("max_pool2d_grad"), [(2, 2, 5, 7), (2, 2, 3, 5)],
                        {"kernel_size": 3, "stride": 1}),
    "narrow": (NarrowOp, lambda b, x, **kw: b.narrow(x, **kw), [(3, 7, 2)], {"dim": -2, "start": 2, "length": 3}),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CHECKS))
def test_gradient_kernel_rules_match_jax_vjp(name):
    op_class, forward, shapes, kwargs = KERNEL_CHECKS[name]
    rng = np.random.default_rng(7)
    inputs = [rng.permutation(int(np.prod(s))).reshape(s) * 0.25 for s in shapes]   # distinct: no max ties
    wrt = (1,) if name == "max_pool2d_grad" else None      # its input only picks positions: zero a.e.
    check_operation(op_class, forward, *inputs, kwargs=kwargs, wrt=wrt, dtypes=("float64",))


def test_scatter_add_rule_matches_jax_vjp():
    rng = np.random.default_rng(3)
    index = rng.integers(0, 4, (3, 5)).astype(np.int32)            # repeats: scatter_add adds them
    check_operation(ScatterAddOp, lambda b, index, src, **kw: b.scatter_add(kw["shape"], kw["dim"], index, src),
                    index, rng.standard_normal((3, 5)), kwargs={"shape": (4, 6), "dim": 0}, dtypes=("float64",))


def test_every_gradient_kernel_is_recorded_only_when_differentiating_a_backward():
    kernels = sorted(name for name, d in REGISTRY.items() if not d.method)   # ops that are no Tensor method
    assert kernels == ["avg_pool2d_grad", "conv2d_input_grad", "conv2d_kernel_grad", "index_add", "max_pool2d_grad",
                       "scatter_add", "slice_scatter"]
    assert all(REGISTRY[name].operation is not None for name in kernels)
    backend = autodiff.new(NumpyBackend())
    x = tensor.from_numpy(np.arange(12.0).reshape(1, 1, 3, 4), backend)
    k = tensor.from_numpy(np.ones((2, 1, 2, 2)), backend)
    y = x.conv2d(k).max_pool2d(2, 1).sum() + (x.cat([x], 3) * x.cat([x], 3)).sum()
    n = backend.tape().num_ops()
    autodiff.backward(y, backend)                 # an ordinary walk runs the rules on the inner backend
    assert backend.tape().num_ops() == n
    autodiff.backward(y, backend, create_graph=True)
    names = {op.name for op in backend.tape().operations()[n:]}
    assert {"Conv2DInputGrad", "Conv2DKernelGrad", "MaxPool2DGrad", "Narrow"} <= names


# -- whole functions: Hessians, third derivatives, the entry points ----------------------------------
def _mlp(x, w1, w2, jnp_mode=False):
    if jnp_mode:
        h = jnp.tanh(x @ w1)
        return jnp.sum(jax.nn.softmax(h @ w2, axis=-1) * jnp.arange(3.0))
    h = (x @ w1).tanh()
    weights = tensor.from_numpy(np.arange(3.0), x.backend)
    return ((h @ w2).softmax(-1) * weights).sum()


@pytest.mark.parametrize("inner_name", ["numpy", "jax"])
def test_hessian_of_a_small_network_equals_jax_hessian(inner_name):
    rng = np.random.default_rng(0)
    xs, w1s, w2s = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((5, 3))
    backend = autodiff.new(INNERS[inner_name])
    x, w1, w2 = (tensor.from_numpy(a, backend) for a in (xs, w1s, w2s))
    tape = backend.tape()
    y = _mlp(x, w1, w2)
    g1, g2 = tape.gradient(y, [w1, w2], create_graph=True)
    hessian_11 = tape.jacobian(g1, w1)                  # ∂²y/∂w1², shape (3, 5, 3, 5)
    hessian_12 = tape.jacobian(g1, w2)                  # ∂²y/∂w1∂w2, shape (3, 5, 5, 3)
    expected = jax.jit(jax.hessian(lambda a, b: _mlp(xs, a, b, jnp_mode=True), argnums=(0, 1)))(w1s, w2s)
    _close(hessian_11.numpy(), np.asarray(expected[0][0]), "∂²y/∂w1²", rtol=1e-11)
    _close(hessian_12.numpy(), np.asarray(expected[0][1]), "∂²y/∂w1∂w2", rtol=1e-11)
    assert g2.shape == (5, 3)


def test_third_derivative_of_a_scalar_function():
    backend = autodiff.new(NumpyBackend())
    xs = np.array([0.3, -1.2, 2.0])
    x = tensor.from_numpy(xs, backend)
    tape = backend.tape()
    y = (x.sin() * x * x).sum()
    (d1,) = tape.gradient(y, [x], create_graph=True)
    (d2,) = tape.gradient(d1.sum(), [x], create_graph=True)      # elementwise: the diagonal
    (d3,) = tape.gradient(d2.sum(), [x])
    f = lambda t: jnp.sin(t) * t * t  # noqa: E731
    for got, fn in ((d1, jax.grad(f)), (d2, jax.grad(jax.grad(f))), (d3, jax.grad(jax.grad(jax.grad(f))))):
        np.testing.assert_allclose(got.numpy(), jax.vmap(fn)(xs), rtol=1e-12)


def test_third_order_through_conv_pool_and_cat_uses_the_kernels_own_rules():
    rng = np.random.default_rng(1)
    xs, ks = rng.permutation(2 * 6 * 5).reshape(1, 2, 6, 5) * 0.05, rng.standard_normal((2, 2, 3, 2))
    v, w = rng.standard_normal(xs.shape), rng.standard_normal(xs.shape)
    backend = autodiff.new(NumpyBackend())
    x, k = tensor.from_numpy(xs, backend), tensor.from_numpy(ks, backend)
    tape = backend.tape()

    def f(x, k):
        y = x.conv2d(k, 2, 1).max_pool2d(2, 1)
        return (y.cat([y], 3) * y.cat([y], 3) * y.cat([y], 3)).sum()

    (g,) = tape.gradient(f(x, k), [x], create_graph=True)
    (h,) = tape.gradient((g * tensor.from_numpy(v, backend)).sum(), [x], create_graph=True)
    (t,) = tape.gradient((h * tensor.from_numpy(w, backend)).sum(), [x])

    def ref(a):
        o = jax.lax.conv_general_dilated(a, ks, (2, 2), [(1, 1), (1, 1)], dimension_numbers=("NCHW", "OIHW", "NCHW"))
        o = jnp.max(jnp.stack([o[:, :, i:i + o.shape[2] - 1, j:j + o.shape[3] - 1] for i in (0, 1) for j in (0, 1)]), 0)
        return 2 * jnp.sum(o ** 3)

    hvp = lambda a: jax.jvp(jax.grad(ref), (a,), (v,))[1]  # noqa: E731
    _close(t.numpy(), np.asarray(jax.jvp(hvp, (xs,), (w,))[1]), "third derivative", rtol=1e-11)


def test_tensor_backward_create_graph_keeps_the_tape_and_a_differentiable_grad(backend):
    x = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    y = (x * x * x).sum()                                   # dy/dx = 3x², d²y/dx² = 6x
    y.backward(create_graph=True)
    assert backend.tape().num_ops() > 3                     # not cleared, and the backward was recorded
    g = x.grad
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])
    x.zero_grad()
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])


def test_backward_and_tape_backward_accept_create_graph(backend):
    x = tensor.from_numpy(np.array([0.5, -1.0]), backend)
    y = x.exp() * x                                         # d/dx = e^x (1 + x), d² = e^x (2 + x)
    grads = autodiff.backward(y, backend, create_graph=True)
    gx = grads[x.raw()]
    second = backend.tape().backward(backend.full((2,), 1.0, "float64"), backend, output=gx, create_graph=True)
    np.testing.assert_allclose(backend.to_numpy(second[x.raw()]), np.exp([0.5, -1.0]) * (2 + np.array([0.5, -1.0])))


def test_create_graph_records_even_when_stopped_or_in_no_grad_and_restores_both():
    backend = autodiff.new(NumpyBackend())
    tape = backend.tape()
    x = tensor.from_numpy(np.array([2.0]), backend)
    y = x * x * x
    tape.stop_recording()
    with autodiff.no_grad():
        (g,) = tape.gradient(y, [x], create_graph=True)
        assert not autodiff.is_grad_enabled()
    assert not tape.is_recording()
    tape.start_recording()
    (h,) = tape.gradient(g, [x])
    np.testing.assert_allclose(h.numpy(), [12.0])           # 6x


def test_create_graph_needs_an_autodiff_backend():
    backend = autodiff.new(NumpyBackend())
    x = tensor.from_numpy(np.array([2.0]), backend)
    y = x * x
    with pytest.raises(TapeError, match=r"backward\(create_graph=True\): got backend NumpyBackend\('numpy'\), which "
                                        r"records no tape; expected the AutodiffBackend"):
        backend.tape().walk({y.raw(): backend.full((1,), 1.0, "float64")}, backend.inner(), create_graph=True)


class _OpaqueSquareOp(Operation):
    """out = x².  Derivation: grad_x = 2·g·x — computed on the host here, so it cannot be recorded."""

    differentiable_backward = False

    def backward(self, g, backend):
        (x,) = self.inputs()
        inner = backend.inner() if hasattr(backend, "inner") else backend
        return [inner.from_numpy(2 * inner.to_numpy(g) * inner.to_numpy(x))]


def test_an_op_whose_rule_is_not_differentiable_says_so():
    backend = autodiff.new(NumpyBackend())
    x = tensor.from_numpy(np.array([3.0]), backend)
    out = backend.inner().mul(x.raw(), x.raw())
    backend.tape().record(_OpaqueSquareOp(out, x.raw()))
    y = backend.sin(out)
    (g,) = backend.tape().gradient(y, [x], backend=backend)     # first order is fine
    np.testing.assert_allclose(g, np.cos(9.0) * 6.0)
    with pytest.raises(TapeError, match="_OpaqueSquareOp: its backward is not differentiable; second-order gradients "
                                        "through _OpaqueSquare are not supported"):
        backend.tape().gradient(y, [x], backend=backend, create_graph=True)
