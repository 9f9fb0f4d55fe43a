"""Issue 12: the twelve defects an outside review found, each reproduced as reported, on both
inner backends where it applies. The families that cover each class live elsewhere:
index dtypes (tests/ops/test_index_dtypes.py), mean sizes (tests/ops/test_reduction_sizes.py),
gradient entry points (tests/robustness/test_entry_points.py), error messages
(tests/regressions/test_issue12_errors.py).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.ops import Operation
from jtape.tensor import BackendError, DTypeError, JtapeError, ShapeError, TapeError

RELEASED = r"earlier backward"  # the wording family of "this graph was released by an earlier backward"


def _t(backend, array, **kw):
    return tensor.from_numpy(np.asarray(array), backend, **kw)


def _assert_close(got, want, rtol=1e-12, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(float(np.max(np.abs(want))), 1e-300) if want.size else 1.0
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:g} x {scale:.3g}"


# -- 1. uint8 indices past 256: gradients ---------------------------------------------------------------
def test_1_uint8_cross_entropy_gradient_past_256_rows(backend):
    rng = np.random.default_rng(1)
    logits, targets = rng.standard_normal((300, 10)), rng.integers(0, 10, 300).astype(np.uint8)
    x = _t(backend, logits)
    x.cross_entropy(_t(backend, targets, requires_grad=False)).backward()
    want = jax.grad(lambda z: jnp.mean(jax.nn.logsumexp(z, 1) - z[jnp.arange(300), targets.astype(np.int32)]))(logits)
    _assert_close(x.grad.numpy(), want, what="cross_entropy gradient, uint8 targets, B=300")


def test_1_uint8_gather_gradient_past_256_rows(backend):
    rng = np.random.default_rng(2)
    xs, index, g = rng.standard_normal((300, 3)), rng.integers(0, 3, (300, 2)).astype(np.uint8), rng.standard_normal((300, 2))
    x = _t(backend, xs)
    x.gather(1, _t(backend, index, requires_grad=False)).backward(_t(backend, g))
    want = jax.vjp(lambda v: jnp.take_along_axis(v, jnp.asarray(index.astype(np.int32)), 1), xs)[1](g)[0]
    _assert_close(x.grad.numpy(), want, what="gather gradient, uint8 index (300, 2), dim 1")


# -- 2. uint8 indices: the range check -------------------------------------------------------------------
def test_2_uint8_index_into_256_values_is_accepted(backend):
    x = tensor.arange(256.0, backend=backend)
    out = x.gather(0, _t(backend, np.array([5, 100], np.uint8), requires_grad=False))
    np.testing.assert_array_equal(out.numpy(), [5.0, 100.0])


def test_2_uint8_targets_with_300_classes_are_accepted(backend):
    rng = np.random.default_rng(3)
    logits, targets = rng.standard_normal((4, 300)), np.array([5, 255, 200, 3], np.uint8)
    loss = _t(backend, logits).cross_entropy(_t(backend, targets, requires_grad=False))
    want = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(4), targets])
    _assert_close(loss.item(), want, what="cross_entropy, 300 classes, uint8 targets")


# -- 3. float16 means over more than 65,504 elements ------------------------------------------------------
N_PAST_F16 = 70_000


def test_3_float16_mean_of_many_elements(backend):
    values = np.random.default_rng(4).uniform(0.0, 0.5, N_PAST_F16).astype(np.float16)  # sum < 65,504
    got = _t(backend, values).mean().item()
    _assert_close(got, values.astype(np.float64).mean(), rtol=2e-3, what="Tensor.mean, float16, 70,000 elements")


def test_3_float16_mean_dim_gradient_of_many_elements(backend):
    x = _t(backend, np.zeros((N_PAST_F16, 2), np.float16))
    x.mean_dim(0).backward(_t(backend, np.ones(2, np.float16)))
    _assert_close(x.grad.numpy(), np.full((N_PAST_F16, 2), 1 / N_PAST_F16), rtol=2e-3, what="mean_dim gradient")


def test_3_float16_mse_loss_gradient_of_many_elements(backend):
    rng = np.random.default_rng(5)
    pred, target = (rng.uniform(-1.0, 1.0, N_PAST_F16).astype(np.float16) for _ in range(2))  # Σ d² < 65,504
    p = _t(backend, pred)
    loss = nn.MSELoss()(p, _t(backend, target, requires_grad=False))
    diff = pred.astype(np.float64) - target.astype(np.float64)
    _assert_close(loss.item(), np.mean(diff * diff), rtol=5e-3, what="MSELoss value")
    loss.backward()
    _assert_close(p.grad.numpy(), 2 * diff / N_PAST_F16, rtol=1e-2, what="MSELoss gradient")


def test_3_float16_cross_entropy_gradient_with_a_batch_past_65504(backend):
    rng = np.random.default_rng(6)
    logits, targets = rng.standard_normal((N_PAST_F16, 2)).astype(np.float16), rng.integers(0, 2, N_PAST_F16)
    x = _t(backend, logits)
    x.cross_entropy(_t(backend, targets.astype(np.int32), requires_grad=False)).backward()
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(N_PAST_F16), targets] -= 1
    _assert_close(x.grad.numpy(), p / N_PAST_F16, rtol=1e-2, what="cross_entropy gradient, B=70,000, float16")


# -- 4. partial gradients after a released graph ---------------------------------------------------------
def _released(backend):
    x = _t(backend, [1.0, 2.0, 3.0])
    h = x * x
    h.sum().backward()  # clears the tape: h's history is gone
    return x, (h * 3).sum()


@pytest.mark.parametrize("unconnected", ["none", "zero"])
def test_4_tape_gradient_after_a_released_graph_raises(backend, unconnected):
    x, z = _released(backend)
    with pytest.raises(TapeError, match=RELEASED):
        backend.tape().gradient(z, [x], unconnected_gradients=unconnected)


def test_4_autodiff_backward_after_a_released_graph_raises(backend):
    _, z = _released(backend)
    with pytest.raises(TapeError, match=RELEASED):
        autodiff.backward(z, backend)


def test_4_jacobian_after_a_released_graph_raises(backend):
    x, z = _released(backend)
    with pytest.raises(TapeError, match=RELEASED):
        backend.tape().jacobian(z, x, unconnected_gradients="zero")


# -- 5. jtape.jit and a tensor the step captures but `state` does not list ---------------------------------
def test_5_jit_rejects_a_captured_tensor_missing_from_state():
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Linear(3, 2, backend, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    scale = _t(backend, np.ones(2, np.float32))   # captured by the step, not in state

    def step(x):
        loss = (model(x) * scale).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    with pytest.raises(JtapeError, match=r"(?s)(?=.*\(2,\))(?=.*state)"):
        jtape.jit(step, state=[model, opt])(_t(backend, np.ones((4, 3), np.float32)))
    assert scale.grad is None or not isinstance(scale.grad.data, jax.core.Tracer), "a tracer leaked into .grad"
    assert not isinstance(scale.data, jax.core.Tracer)
    (scale * 2).sum().backward()                  # eager use afterwards works
    np.testing.assert_allclose(scale.grad.numpy(), [2.0, 2.0])


# -- 6. jax.jit / jax.vmap over jtape code outside jtape.jit ------------------------------------------------
def _no_tracers_on(tape, before: int, outcome: str) -> None:
    assert tape.num_ops() == before, f"{outcome}: the user's tape went from {before} to {tape.num_ops()} ops"
    for op in tape.operations():
        for t in (*op.inputs(), op.output()):
            assert not isinstance(t.data, jax.core.Tracer), f"{outcome}: a tracer on the user's tape"


def _traced_or_refused(run, tape, want):
    """Either a clear jtape error naming the transformation, or the right value — never tracers on the tape."""
    before = tape.num_ops()
    try:
        got = run()
    except JtapeError as e:
        assert re.search(r"jax\.(jit|vmap|grad)|jtape\.jit|trac", str(e)), str(e)
        _no_tracers_on(tape, before, f"after the error {e}")
        return
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    _no_tracers_on(tape, before, "after the transformation")


def test_6_jax_jit_over_jtape_code_leaves_no_tracers_on_the_tape():
    backend = autodiff.new(JaxBackend("cpu"))
    def f(raw):
        w = tensor.Tensor(raw, backend)
        return (w * w).sum().raw()

    raw = backend.inner().from_numpy(np.arange(3.0))
    _traced_or_refused(lambda: jax.jit(f)(raw).data, backend.tape(), 5.0)


def test_6_jax_vmap_of_grad_over_jtape_code_leaves_no_tracers_on_the_tape():
    backend = autodiff.new(JaxBackend("cpu"))
    treedef = jax.tree_util.tree_structure(backend.inner().from_numpy(np.zeros(())))

    def f(a):
        w = tensor.Tensor(jax.tree_util.tree_unflatten(treedef, [a]), backend)
        return (w * w).sin().sum().raw().data

    xs = np.arange(3.0)
    _traced_or_refused(lambda: jax.vmap(jax.grad(f))(jnp.asarray(xs)), backend.tape(), 2 * xs * np.cos(xs * xs))


# -- 7. Tensor.backward() without a gradient on a non-scalar ----------------------------------------------------
def test_7_backward_without_grad_needs_a_one_element_tensor(backend):
    x = _t(backend, [1.0, 2.0, 3.0])
    with pytest.raises(JtapeError, match=r"(?s)scalar outputs.*\(3,\)|\(3,\).*scalar outputs"):
        (x * x).backward()
    assert x.grad is None


def test_7_autodiff_backward_still_seeds_ones(backend):
    x = _t(backend, [1.0, 2.0, 3.0])
    grads = autodiff.backward(x * x, backend)
    np.testing.assert_allclose(np.asarray(grads[x.raw()].data), [2.0, 4.0, 6.0])


# -- 8. results under no_grad are constants ----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["autodiff.no_grad", "backend.no_grad"])
def test_8_results_under_no_grad_do_not_require_grad(backend, how):
    x = _t(backend, [1.0, 2.0, 3.0])
    with (autodiff.no_grad() if how == "autodiff.no_grad" else backend.no_grad()):
        y = x * 2
    assert not y.requires_grad, "a result computed under no_grad must be a constant"
    (y * x).sum().backward()
    assert y.grad is None, "a constant collected a .grad"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


# -- 9. a hook's result goes through the rules' check ----------------------------------------------------------
class _BadOp(Operation):
    """out = x (identity) whose rule returns a gradient chosen by the test.  Derivation: none (a fault)."""

    bad = None

    def __init__(self, out, x):
        super().__init__(out, x)

    def backward(self, g, backend):
        return [_BadOp.bad(backend)]


@autodiff.custom_op(_BadOp)
def _identity(backend, x):
    return backend.mul_scalar(x, 1.0)


def _core(message: str) -> str:
    """The part of a gradient-check message after its location: 'got a gradient ...'."""
    found = re.search(r"got a gradient.*", message)
    assert found, f"not the rules' gradient check: {message!r}"
    return found.group(0)


BAD_GRADS = {
    "shape": (ShapeError, r"got a gradient of shape \(2,\)", lambda b: b.full((2,), 1.0, "float64")),
    "dtype": (DTypeError, r"got a gradient of dtype float32", lambda b: b.full((3,), 1.0, "float32")),
    "backend": (BackendError, r"got a gradient holding", None),
}


@pytest.mark.parametrize("kind", sorted(BAD_GRADS))
def test_9_hook_results_get_the_same_check_and_message_as_rule_results(backend, kind):
    error, match, make = BAD_GRADS[kind]
    if make is None:  # a gradient from the other inner backend
        other = jtape.backends.NumpyBackend() if isinstance(backend.inner(), JaxBackend) else JaxBackend("cpu")
        make = lambda b: other.full((3,), 1.0, "float64")
    x = _t(backend, [1.0, 2.0, 3.0])
    x.register_hook(lambda g: tensor.Tensor(make(backend.inner()), backend))
    with pytest.raises(error, match=match) as from_hook:
        (x * x).sum().backward()
    assert x.grad is None
    _BadOp.bad = make
    y = _t(backend, [1.0, 2.0, 3.0])
    with pytest.raises(error, match=match) as from_rule:
        _identity(backend, y).sum().backward()
    assert _core(str(from_hook.value)) == _core(str(from_rule.value))


# -- 10. custom_op with Tensors in a list ----------------------------------------------------------------------
class _SumAllOp(Operation):
    """out = Σ_i Σ x_i over a list of tensors.  Derivation: ∂out/∂x_i = 1, so grad_i = g expanded to x_i's shape."""

    def __init__(self, out, xs):
        super().__init__(out, *xs)

    def backward(self, g, backend):
        return [backend.expand(g, tuple(x.shape)) for x in self.inputs()]


@autodiff.custom_op(_SumAllOp)
def _sum_all(backend, xs):
    return backend.sum(backend.cat([backend.reshape(x, (-1,)) for x in xs], 0))


def test_10_custom_op_given_tensors_in_a_list_returns_a_tensor(backend):
    a, b = _t(backend, [1.0, 2.0, 3.0]), _t(backend, [[4.0], [5.0]])
    out = _sum_all(backend, [a, b])
    assert isinstance(out, tensor.Tensor), f"got {type(out).__name__}"
    assert out.item() == 15.0
    out.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(3))
    np.testing.assert_array_equal(b.grad.numpy(), np.ones((2, 1)))


# -- 12. NaN in a max-pool window: one convention, stated (README "Guarantees") --------------------------------
@pytest.mark.parametrize("window, winner", [([1.0, np.nan, np.nan, 3.0], 1), ([5.0, np.nan, 2.0, 3.0], 1),
                                            ([np.nan, 1.0, 2.0, 3.0], 0), ([1.0, 4.0, 4.0, 3.0], 1)])
def test_12_max_pool_routes_a_window_s_gradient_to_its_first_nan_or_first_max(backend, window, winner):
    """The value is NaN as in jax; the gradient goes to the window's first NaN (or, without NaN, its
    first maximum) in row-major order — as torch and NumPy's argmax. (jax's select-and-scatter
    routes it by a scan that skips NaNs, e.g. to the 3.0 of the first window.)"""
    xs = np.array(window).reshape(1, 1, 2, 2)
    x = _t(backend, xs)
    out = x.max_pool2d(2)
    out.sum().backward()
    value = lax.reduce_window(jnp.asarray(xs), -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    np.testing.assert_array_equal(out.numpy(), np.asarray(value))
    np.testing.assert_array_equal(x.grad.numpy().ravel(), np.eye(4)[winner])
