"""In-place operators (``t += x``, ``-= *= /= **= @= &= |=``): the tensor object changes, as in
PyTorch. Without them Python rebinds the name, so the first thing a PyTorch user writes for a
hand-made update — ``for p in model.parameters(): p -= lr * p.grad`` — rebound the loop variable
and left every parameter as it was, with no error. Checked here: that update against
``optim.SGD`` in every mode (deferred, op by op, NumPy, ``jtape.jit``); every operator on a tensor
an op made, values and gradients against jax; what a leaf keeps (grad, hooks, name, kind,
``requires_grad``); and the refusals, each leaving the tensor and the tape as they were."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor.errors import DTypeError, ShapeError, TapeError

MODES = {
    "deferred": lambda: autodiff.new(JaxBackend("cpu")),
    "op by op": lambda: autodiff.new(JaxBackend("cpu"), defer=False),
    "numpy": lambda: autodiff.new(NumpyBackend()),
}
RNG = np.random.default_rng(7)
X = RNG.standard_normal((8, 5)).astype(np.float32)
Y = RNG.integers(0, 3, 8).astype(np.int32)
LRS = [0.5 * 0.8 ** i for i in range(6)]          # a learning rate that changes every step


def _model(backend):
    return nn.Sequential(nn.Linear(5, 4, backend, seed=0), nn.Tanh(), nn.Linear(4, 3, backend, seed=1))


def _train_by_hand(mode: str, jit: bool = False):
    backend = MODES[mode]()
    model = _model(backend)
    x, y = tensor.from_numpy(X, backend, requires_grad=False), tensor.from_numpy(Y, backend)

    def step(x, y, lr):
        loss = model(x).cross_entropy(y)
        loss.backward()
        with jtape.no_grad():
            for p in model.parameters():
                p -= lr * p.grad          # the PyTorch user's update: the loop variable is the Parameter
                p.zero_grad()
        return loss
    if jit:
        step = jtape.jit(step, state=[model])
    losses = [float(step(x, y, lr).item()) for lr in LRS]
    return losses, model


def _train_with_sgd():
    backend = autodiff.new(JaxBackend("cpu"), defer=False)
    model = _model(backend)
    opt = optim.SGD(model.parameters(), lr=LRS[0])
    x, y = tensor.from_numpy(X, backend, requires_grad=False), tensor.from_numpy(Y, backend)
    losses = []
    for lr in LRS:
        opt.param_groups[0]["lr"] = lr
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.item()))
    return losses, model


@pytest.mark.parametrize("mode,jit", [("deferred", False), ("op by op", False), ("numpy", False), ("deferred", True)])
def test_a_hand_written_update_trains_the_model_as_sgd_does(mode, jit):
    ref_losses, ref_model = _train_with_sgd()
    losses, model = _train_by_hand(mode, jit)
    assert losses[-1] < losses[0] - 0.05                     # it trained at all
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert type(p) is nn.Parameter and p.requires_grad
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_a_leaf_changed_in_place_keeps_its_grad_hooks_name_and_kind(mode):
    backend = MODES[mode]()
    model = _model(backend)
    p = model.parameters()[0]
    alias = p
    autodiff.label(p, "w1")
    seen = []
    p.register_hook(lambda g: seen.append(np.asarray(g.numpy())) or g)
    x = tensor.from_numpy(X, backend, requires_grad=False)
    model(x).sum().backward()
    before, grad = p.numpy().copy(), p.grad.numpy().copy()
    with jtape.no_grad():
        p -= 0.25 * p.grad
        p *= 2.0
    assert alias is p and type(p) is nn.Parameter and p.requires_grad and p.raw().name == "w1"
    np.testing.assert_allclose(p.numpy(), (before - 0.25 * grad) * 2.0, rtol=1e-6)
    np.testing.assert_array_equal(p.grad.numpy(), grad)             # .grad still reads the last gradient
    p.zero_grad()
    model(x).sum().backward()                                       # the hook still fires, the gradient still arrives
    assert len(seen) == 2 and p.grad is not None and p.grad.shape == p.shape


@pytest.mark.parametrize("mode", MODES)
def test_a_buffer_and_a_constant_change_in_place_and_stay_constants(mode):
    backend = MODES[mode]()
    buf = nn.Buffer(tensor.from_numpy(np.ones(3, np.float32), backend))
    const = tensor.from_numpy(np.ones(3, np.float32), backend, requires_grad=False)
    n = len(backend.tape())
    buf += 1.0                                  # outside no_grad too: nothing wants a gradient
    const *= np.array([1.0, 2.0, 3.0], np.float32)
    assert len(backend.tape()) == n
    assert type(buf) is nn.Buffer and not buf.requires_grad and not const.requires_grad
    np.testing.assert_array_equal(buf.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(const.numpy(), [1.0, 2.0, 3.0])


INPLACE = {"+=": (operator.iadd, operator.add), "-=": (operator.isub, operator.sub),
           "*=": (operator.imul, operator.mul), "/=": (operator.itruediv, operator.truediv),
           "**=": (operator.ipow, operator.pow), "@=": (operator.imatmul, operator.matmul)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sym,other", [(s, o) for s in INPLACE for o in ("tensor", "number") if (s, o) != ("@=", "number")])
def test_each_operator_on_a_tensor_an_op_made_is_recorded_like_its_out_of_place_form(mode, sym, other):
    """``h op= v`` in a forward (a residual ``h += f(h)``): the same tensor object now names the op's
    output; the gradient flows through it to the old value, and to ``v``, as jax.grad says."""
    backend = MODES[mode]()
    inplace, plain = INPLACE[sym]
    a0 = RNG.uniform(0.5, 1.5, (3, 3))
    b0 = RNG.uniform(0.5, 1.5, (3, 3)) if other == "tensor" else 1.5

    def f(a, b):
        h = a * 2.0                          # made by an op: not a leaf
        alias = h
        h = inplace(h, b)
        assert h is alias
        return (h * h).sum()

    a = tensor.from_numpy(a0, backend)
    b = tensor.from_numpy(b0, backend) if other == "tensor" else b0
    loss = f(a, b)
    loss.backward()
    ref = lambda a, b: jnp.sum(plain(a * 2.0, b) ** 2)        # noqa: E731
    argnums = (0, 1) if other == "tensor" else (0,)
    value, grads = jax.value_and_grad(ref, argnums=argnums)(jnp.asarray(a0), jnp.asarray(b0))
    np.testing.assert_allclose(loss.item(), value, rtol=1e-10)
    np.testing.assert_allclose(a.grad.numpy(), grads[0], rtol=1e-10)
    if other == "tensor":
        np.testing.assert_allclose(b.grad.numpy(), grads[1], rtol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_and_or_in_place_on_bool_masks(mode):
    backend = MODES[mode]()
    m = tensor.from_numpy(np.array([True, False, True]), backend)
    m &= np.array([True, True, False])
    np.testing.assert_array_equal(m.numpy(), [True, False, False])
    m |= tensor.from_numpy(np.array([False, True, False]), backend)
    np.testing.assert_array_equal(m.numpy(), [True, True, False])


@pytest.mark.parametrize("mode", MODES)
def test_refusals_leave_the_tensor_and_the_tape_as_they_were(mode):
    backend = MODES[mode]()
    model = _model(backend)
    p = model.parameters()[0]
    raw, values, n = p.raw(), p.numpy().copy(), len(backend.tape())
    # a leaf that wants a gradient, while the tape records: PyTorch refuses it too
    with pytest.raises(TapeError, match=r"^-=: a leaf tensor that requires a gradient \(shape \(4, 5\)\) cannot "
                                        r"change in place while the tape records; for an update write it inside "
                                        r"`with jtape.no_grad\(\):`"):
        p -= 1.0
    assert p.raw() is raw and len(backend.tape()) == n
    with jtape.no_grad():
        # broadcasting the target up, or changing its dtype: the result cannot be the same tensor
        with pytest.raises(ShapeError, match=r"^\+=: the result has shape \(2, 4, 5\), the tensor changed in place "
                                             r"has shape \(4, 5\); expected the same \(write t = t \+ x"):
            p += np.ones((2, 4, 5), np.float32)
        with pytest.raises(ShapeError, match=r"^@=: the result has shape \(4, 3\)"):
            p @= np.ones((5, 3), np.float32)
        i = tensor.from_numpy(np.arange(3, dtype=np.int32), backend)
        with pytest.raises(DTypeError, match=r"^div_scalar: got dtype int32; expected a float dtype"):
            i /= 2
    assert p.raw() is raw and p.requires_grad
    np.testing.assert_array_equal(p.numpy(), values)
    np.testing.assert_array_equal(i.numpy(), [0, 1, 2])


def test_a_mixed_dtype_result_is_refused():
    backend = autodiff.new(JaxBackend("cpu"))
    m = tensor.from_numpy(np.array([True, False]), backend)
    # the operator's own dtype rule refuses first (the result would not be bool)
    with pytest.raises(DTypeError, match=r"^add: got dtypes bool, float32; expected all inputs to have the same dtype"):
        m += tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    np.testing.assert_array_equal(m.numpy(), [True, False])


# -- inside jtape.jit: the compiled step equals the eager one, or refuses ----------------------------
def _counter_model(backend):
    model = nn.Linear(3, 2, backend, seed=0)
    model.register_buffer("seen", nn.Buffer(tensor.from_numpy(np.zeros((), np.float32), backend)))
    return model


@pytest.mark.parametrize("compiled", [False, True])
def test_in_place_on_the_steps_own_tensors_and_state_is_the_same_compiled(compiled):
    """A tensor the step makes and a Buffer in its state change in place the same way in both."""
    backend = autodiff.new(JaxBackend("cpu"))
    model = _counter_model(backend)

    def step(x):
        h = model(x)
        h += 1.0                          # a tensor an op made: recorded
        h *= x.sum()                      # by a 0-d tensor
        with jtape.no_grad():
            model.seen += 1.0             # state: the Buffer changes, as eagerly
        return h.sum()
    if compiled:
        step = jtape.jit(step, state=[model])
    x = tensor.from_numpy(np.ones((4, 3), np.float32), backend, requires_grad=False)
    values = [float(step(x).item()) for _ in range(3)]
    assert model.seen.item() == 3.0 and type(model.seen) is nn.Buffer
    ref_model = _counter_model(autodiff.new(JaxBackend("cpu"), defer=False))
    h = ref_model(tensor.from_numpy(np.ones((4, 3), np.float32), ref_model.weight.backend, requires_grad=False))
    np.testing.assert_allclose(values, [float(((h.numpy() + 1.0) * 12.0).sum())] * 3, rtol=1e-6)


def test_in_place_on_an_argument_of_a_compiled_step_is_refused():
    """Eagerly, ``x /= 2`` halves the caller's tensor; a compiled step gets a copy of it and could
    not, so it refuses rather than differ — and the caller's tensor is left as it was."""
    backend = autodiff.new(JaxBackend("cpu"))

    @jtape.jit
    def step(x):
        x /= 2.0
        return x.sum()
    x = tensor.from_numpy(np.ones((2, 2)), backend, requires_grad=False)
    with pytest.raises(TypeError, match=r"^/=: the tensor changed in place \(shape \(2, 2\)\) is an argument of the "
                                        r"jtape.jit step; the compiled step cannot change the caller's tensor as an "
                                        r"eager step would. Expected t = t / x inside the step"):
        step(x)
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 2)))


def test_in_place_on_a_tensor_captured_by_a_compiled_step_is_refused():
    """A tensor made outside the step and changed in place inside it would be left holding a tracer."""
    backend = autodiff.new(JaxBackend("cpu"))
    total = tensor.from_numpy(np.zeros(()), backend, requires_grad=False)

    @jtape.jit
    def step(x):
        nonlocal total
        total += x.sum()
        return x.sum()
    with pytest.raises(TypeError, match=r"^\+=: the tensor changed in place \(shape \(\)\) was made outside this jax "
                                        r"trace \(a jtape.jit step captured it\); it would be left holding a tracer"):
        step(tensor.from_numpy(np.ones((2, 2)), backend, requires_grad=False))
    assert total.item() == 0.0                                  # still its own value, no tracer
