"""Deferred eager: every way a pending value can travel gives the op-by-op value, and every check
an op makes still fires — at the op when the values it checks exist, at the flush otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import Device, RawTensor
from jtape.tensor.errors import BackendError, ShapeError


def _backend(defer: bool):
    return autodiff.new(JaxBackend("cpu"), defer=defer)


def test_a_detached_pending_tensor_keeps_its_value_when_the_original_is_dropped():
    backend = _backend(True)
    x = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    kept = (x * 3.0).detach()                   # the pending original is dropped at once
    assert kept.raw().data.__class__.__name__ == "Pending" and not kept.requires_grad
    np.testing.assert_array_equal(kept.numpy(), [3.0, 6.0])


def _update_loop(defer: bool, steps: int = 5) -> list:
    """A hand-written gradient step: new leaves made with detach() under no_grad (the pattern of
    examples/custom_ops/huber.py), values read only at the end."""
    backend = _backend(defer)
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((8, 3)).astype(np.float32), backend, requires_grad=False)
    w = tensor.from_numpy(np.zeros((3, 1), np.float32), backend)
    losses = []
    for _ in range(steps):
        loss = ((x @ w - 1.0) ** 2).mean()
        loss.backward()
        losses.append(loss)
        with backend.no_grad():
            w = (w - w.grad * 0.1).detach().requires_grad_()
    return [float(v.item()) for v in losses] + list(w.numpy().ravel())


def test_a_no_grad_update_loop_equals_op_by_op():
    np.testing.assert_allclose(_update_loop(True), _update_loop(False), rtol=1e-6)


def _intermediates(defer: bool, drop: bool, monkeypatch=None) -> tuple:
    """Pending results held only by other pending ops: ``(x * 0.5) * w`` and ``(that - 1.0).exp()``
    under no_grad keep only the last result; with ``drop`` also a chain nobody can read any more.
    Returns the values read and how many times the flush described its ops."""
    from jtape.autodiff import deferred

    described = []
    if monkeypatch is not None:
        plain = deferred.describe
        monkeypatch.setattr(deferred, "describe", lambda *a: described.append(1) or plain(*a))
    backend = _backend(defer)
    x = tensor.from_numpy(np.array([1.0, -2.0, 3.0], np.float32), backend)
    w = tensor.from_numpy(np.array([0.5, 0.25, -1.0], np.float32), backend)
    out = []
    for step in range(3):                      # the second and third flush run compiled
        with backend.no_grad():
            kept = ((x * 0.5) * w - 1.0).exp()
            if drop:
                lost = (x + 2.0) * 3.0          # held only by the ops that make it, then not at all
                del lost
        out.append(kept.numpy().copy())
    return out, len(described)


@pytest.mark.parametrize("drop", [False, True])
def test_results_held_only_by_pending_ops(drop, monkeypatch):
    """An intermediate read by a kept op is computed inside the program; an op whose result nothing
    can read is dropped. The ops are described again only when one was dropped (an update written
    by hand has such intermediates every step: one description per flush, not two)."""
    got, described = _intermediates(True, drop, monkeypatch)
    want, _ = _intermediates(False, drop)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert described == (6 if drop else 3), described


def test_a_pending_tensor_handed_to_the_inner_backend_runs_first():
    backend = _backend(True)
    x = tensor.from_numpy(np.array([1.0, -2.0], np.float32), backend)
    y = x * 2.0
    inner = backend.inner()                                        # the plain JaxBackend
    out = inner.exp(y.raw())
    np.testing.assert_allclose(np.asarray(out.data), np.exp([2.0, -4.0]), rtol=1e-6)


def test_index_values_that_exist_are_checked_at_the_op_and_nothing_is_recorded():
    backend = _backend(True)
    logits = tensor.from_numpy(np.zeros((2, 3), np.float32), backend)
    bad = tensor.from_numpy(np.array([0, 3], np.int32), backend).reshape(2)   # an int op on known values
    with pytest.raises(ShapeError, match=r"cross_entropy: got targets values in \[0, 3\]"):
        logits.exp().cross_entropy(bad)
    assert [type(op).__name__ for op in backend.tape().operations()] == ["ExpOp"]


def test_a_computed_index_is_checked_when_the_program_runs():
    backend = _backend(True)
    x = tensor.from_numpy(np.arange(6.0, dtype=np.float32).reshape(2, 3), backend)
    index = (x.sum_dim(1, True) * 0.0 + 5.0).cast("int32")      # pending, value 5: out of range for 3
    picked = x.gather(1, index)
    with pytest.raises(ShapeError, match=r"gather: got index values in \[5, 5\]"):
        picked.sum().backward()


def test_another_backends_or_devices_tensor_raises_at_the_op():
    backend = _backend(True)
    x = tensor.from_numpy(np.ones((2,), np.float32), backend)
    numpy_raw = NumpyBackend().from_numpy(np.ones((2,), np.float32))
    with pytest.raises(BackendError, match=r"^add: got a tensor holding"):
        backend.add(x.raw(), numpy_raw)
    elsewhere = RawTensor(x.raw().value(), x.raw().shape, x.raw().dtype, Device.GPU)
    with pytest.raises(BackendError, match=r"^exp: got a tensor holding \w+ on gpu"):
        backend.exp(elsewhere)
    assert backend.tape().num_ops() == 0


def test_a_program_past_the_size_bound_runs_op_by_op_and_is_never_compiled(monkeypatch):
    """XLA's compile time grows faster than a huge program's run time (a 10⁵-op chain flushes the
    same 20,000-op structure again and again): past MAX_PROGRAM_OPS a structure runs op by op."""
    from jtape.autodiff import deferred

    monkeypatch.setattr(deferred, "MAX_PROGRAM_OPS", 10)
    backend = _backend(True)
    x = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    for _ in range(3):                               # the same 12-op step three times
        y = x
        for _ in range(6):
            y = (y * 1.5).sin()
        y.sum().backward()
    assert backend._deferred.compiles == 0
    np.testing.assert_allclose(x.grad.numpy(), _chain_grad(np.array([1.0, 2.0])) * 3, rtol=1e-5)


def _chain_grad(x: np.ndarray) -> np.ndarray:
    g = np.ones_like(x)
    for _ in range(6):
        g = g * 1.5 * np.cos(x * 1.5)
        x = np.sin(x * 1.5)
    return g
