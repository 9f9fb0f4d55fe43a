"""``Tensor.assign``: swapping in new values. The docs' hand-written update is
``p.assign(p - lr * p.grad)`` under ``no_grad``; ``assign`` used to take only a RawTensor (so that
line raised), and the RawTensor an op makes under ``no_grad`` is a constant, so
``p.assign((p - lr * p.grad).raw())`` silently stopped ``p`` getting gradients — with ``.grad``
not reset, the next update reused the old gradient. Checked here: the update trains as
``optim.SGD`` does in every mode (deferred, op by op, NumPy, ``jtape.jit``), on Parameters and
on plain tensors; ``requires_grad`` stays what it was (a trained tensor keeps getting gradients,
a frozen one stays frozen, a buffer stays a constant) whichever way the values come; and the
refusals, each leaving the tensor and the tape as they were."""

from __future__ import annotations

import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ArgumentError, DTypeError, ShapeError, TapeError

from .test_inplace import MODES          # deferred, op by op, NumPy: the modes t -= x is checked in
RNG = np.random.default_rng(11)
X = RNG.standard_normal((8, 5)).astype(np.float32)
Y = RNG.integers(0, 3, 8).astype(np.int32)
W1 = (0.5 * RNG.standard_normal((5, 4))).astype(np.float32)
W2 = (0.5 * RNG.standard_normal((4, 3))).astype(np.float32)
LRS = [0.5 * 0.8 ** i for i in range(6)]


def _train(backend, params, update, jit=False):
    x, y = tensor.from_numpy(X, backend, requires_grad=False), tensor.from_numpy(Y, backend)

    def step(x, y, lr):
        loss = (x @ params[0]).tanh().matmul(params[1]).cross_entropy(y)
        loss.backward()
        update(params, lr)
        return loss
    if jit:
        step = jtape.jit(step, state=params)
    return [float(step(x, y, lr).item()) for lr in LRS]


def _by_assign(params, lr):
    with jtape.no_grad():
        for p in params:
            p.assign(p - lr * p.grad)          # the docs' update
            p.grad = None


def _reference():
    backend = autodiff.new(JaxBackend("cpu"), defer=False)
    params = [nn.Parameter(tensor.from_numpy(w, backend)) for w in (W1, W2)]
    opt = optim.SGD(params, lr=LRS[0])

    def update(params, lr):
        opt.param_groups[0]["lr"] = lr
        opt.step()
        opt.zero_grad()
    return _train(backend, params, update), params


@pytest.mark.parametrize("mode,jit,kind", [(m, False, k) for m in MODES for k in ("Parameter", "Tensor")]
                         + [("deferred", True, "Parameter")])     # (jtape.jit's state: Parameters, Buffers, Modules)
def test_the_hand_written_update_with_assign_trains_as_sgd_does(mode, jit, kind):
    ref_losses, ref_params = _reference()
    backend = MODES[mode]()
    params = [tensor.from_numpy(w, backend) for w in (W1, W2)]
    if kind == "Parameter":
        params = [nn.Parameter(p) for p in params]
    losses = _train(backend, params, _by_assign, jit)
    assert losses[-1] < losses[0] - 0.05
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    for p, q in zip(params, ref_params):
        assert type(p).__name__ == kind and p.requires_grad
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("source", ["Tensor under no_grad", "RawTensor", "RawTensor of a constant"])
def test_assign_keeps_requires_grad_whichever_way_the_values_come(mode, source):
    backend = MODES[mode]()
    trained = nn.Parameter(tensor.from_numpy(W1, backend))
    frozen = nn.Parameter(tensor.from_numpy(W1, backend)).requires_grad_(False)
    buf = nn.Buffer(tensor.from_numpy(W1, backend))
    for t in (trained, frozen, buf):
        was = t.requires_grad
        if source == "Tensor under no_grad":
            with jtape.no_grad():
                new = t * 2.0
        elif source == "RawTensor":
            new = backend.from_numpy(2.0 * W1)                      # a new RawTensor wants gradients by default
        else:
            new = tensor.from_numpy(2.0 * W1, backend, requires_grad=False).raw()
        t.assign(new)
        assert t.requires_grad is was
        np.testing.assert_allclose(t.numpy(), 2.0 * W1, rtol=1e-6)
    x = tensor.from_numpy(X, backend, requires_grad=False)
    (x @ trained + x @ frozen + x @ buf).sum().backward()
    np.testing.assert_allclose(trained.grad.numpy(), np.broadcast_to(X.sum(0)[:, None], W1.shape), rtol=1e-5)
    assert frozen.grad is None and buf.grad is None


@pytest.mark.parametrize("mode", MODES)
def test_assign_keeps_the_gradient_hooks_and_name(mode):
    backend = MODES[mode]()
    p = nn.Parameter(tensor.from_numpy(W1, backend))
    autodiff.label(p, "w")
    seen = []
    p.register_hook(lambda g: seen.append(1) or g)
    x = tensor.from_numpy(X, backend, requires_grad=False)
    (x @ p).sum().backward()
    grad = p.grad.numpy().copy()
    with jtape.no_grad():
        p.assign(p - 0.1 * p.grad)
    np.testing.assert_array_equal(p.grad.numpy(), grad)      # .grad still reads the last gradient
    assert p.raw().name == "w"
    (x @ p).sum().backward()                                  # not reset: the next gradient accumulates, as in torch
    np.testing.assert_allclose(p.grad.numpy(), 2 * grad, rtol=1e-6)
    assert len(seen) == 2


@pytest.mark.parametrize("mode", MODES)
def test_assign_refuses_what_it_cannot_take_and_loses_nothing(mode):
    backend = MODES[mode]()
    p = nn.Parameter(tensor.from_numpy(W1, backend))
    t = tensor.from_numpy(W1, backend)
    x = tensor.from_numpy(X, backend, requires_grad=False)
    y = x @ p                                                  # recorded: an op's output, wanting a gradient
    n, raw = len(backend.tape()), p.raw()
    with pytest.raises(TapeError, match=r"Parameter.assign: the new values \(shape \(5, 4\)\) were made by an op "
                                        r"the tape recorded.*no_grad"):
        p.assign(p * 2.0)
    with pytest.raises(TapeError, match=r"Tensor.assign: .*made by an op the tape recorded"):
        t.assign(t + 1.0)
    with pytest.raises(ArgumentError, match=r"Parameter.assign: got a ndarray; expected a Tensor or a RawTensor of "
                                            r"shape \(5, 4\) and dtype float32"):
        p.assign(2.0 * W1)
    with pytest.raises(ShapeError, match=r"Parameter.assign: got shape \(4, 5\); expected \(5, 4\)"):
        with jtape.no_grad():
            p.assign(p.T * 2.0)
    with pytest.raises(DTypeError, match="Parameter.assign: got dtype int32; expected float32"):
        p.assign(tensor.from_numpy(W1.astype(np.int32), backend))
    assert p.raw() is raw and p.requires_grad
    assert len(backend.tape()) == n + 2                        # the two refused ops' values were recorded, nothing else
    np.testing.assert_allclose(p.numpy(), W1)
    y.sum().backward()                                         # the step before the refusals still walks
    np.testing.assert_allclose(p.grad.numpy(), np.broadcast_to(X.sum(0)[:, None], W1.shape), rtol=1e-5)


@pytest.mark.parametrize("how", ["Tensor", "RawTensor"])
def test_a_jitted_step_cannot_assign_to_a_tensor_it_captured(how):
    """A tensor outside ``state=[...]`` would be left holding a tracer (as ``t -= x`` is refused)."""
    backend = MODES["deferred"]()
    p = nn.Parameter(tensor.from_numpy(W1, backend))
    q = nn.Parameter(tensor.from_numpy(W1, backend))
    x = tensor.from_numpy(X, backend, requires_grad=False)

    def step(x):
        loss = (x @ p).sum()
        loss.backward()
        with jtape.no_grad():
            p.assign(p - 0.1 * p.grad)
            new = q - 0.1 * p.grad
            q.assign(new if how == "Tensor" else new.raw())
        p.grad = None
        return loss
    raw_p, raw_q = p.raw(), q.raw()
    with pytest.raises(ArgumentError, match=r"Parameter.assign: this tensor \(shape \(5, 4\)\) was made outside the "
                                            r"jax trace .* Expected it in the step's state=\[\.\.\.\]"):
        jtape.jit(step, state=[p])(x)
    assert p.raw() is raw_p and q.raw() is raw_q
    np.testing.assert_array_equal(p.numpy(), W1)
    np.testing.assert_array_equal(q.numpy(), W1)
    loss = jtape.jit(step, state=[p, q])(x)                    # with q in the state it is the eager step
    np.testing.assert_allclose(loss.item(), (X @ W1).sum(), rtol=1e-5)
    g = np.broadcast_to(X.sum(0)[:, None], W1.shape)
    np.testing.assert_allclose(p.numpy(), W1 - 0.1 * g, rtol=1e-5)
    np.testing.assert_allclose(q.numpy(), W1 - 0.1 * g, rtol=1e-5)
