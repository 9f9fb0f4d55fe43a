"""Scalars that change every step do not change a deferred step's program.

A deferred program is cached by the step's structure. A Python number given to an op (mul_scalar's
value, leaky_relu's slope, pad's fill value, a learning rate in a hand-written update) is an
argument of the program, not part of its structure, so a step whose numbers change each time — a
decaying learning rate, an annealed temperature — is compiled once, as jax.jit compiles a function
once for every value of a float argument. Before, every such step was a new structure: it never
compiled and ran op by op, silently slower. Only a scalar that a rule branches on stays part of the
structure (``Operation.concrete``: pow_scalar's exponent).

Checked: such steps compile a bounded number of programs, and give what the op-by-op path gives —
values, gradients and trained parameters — in float32 and float16, and an int scalar on a pending
index."""

from __future__ import annotations

import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, tensor
from jtape.backends import JaxBackend
from jtape.ops.elementwise import PowScalarOp

from ..conftest import TEST_DEVICE

RNG = np.random.default_rng(3)
X = RNG.standard_normal((6, 5)).astype(np.float32)
MASK = RNG.random((6, 7)) < 0.3
STEPS = 8


def _forward(model, x, mask, i: int):
    """Every op that takes a Python scalar, with a scalar that changes with the step ``i``."""
    h = model(x) * (1.0 + 0.1 * i)                      # mul_scalar
    h = h / (2.0 + 0.05 * i) + 0.3 * i - 0.2 * i * i    # div_scalar, add_scalar, sub_scalar
    h = h.leaky_relu(0.01 + 0.02 * i).elu(1.0 + 0.1 * i)
    h = h.pad(((0, 0), (1, 1)), 0.5 - 0.1 * i)          # pad's fill value
    h = h.masked_fill(mask, -0.25 * i)
    return (h ** 2).mean()                                # pow_scalar with a fixed exponent


def _train(defer: bool, dtype: str = "float32", steps: int = STEPS):
    backend = autodiff.new(JaxBackend(TEST_DEVICE), defer=defer)
    model = nn.Linear(5, 5, backend, seed=0).to(dtype)
    x = tensor.from_numpy(X, backend, requires_grad=False).to(dtype)
    mask = tensor.from_numpy(MASK, backend)
    losses = []
    for i in range(steps):
        loss = _forward(model, x, mask, i)
        loss.backward()
        with jtape.no_grad():
            for p in model.parameters():
                p -= (0.5 * 0.9 ** i) * p.grad            # a learning rate that changes every step
                p.zero_grad()
        losses.append(loss.item())
    return backend, np.array(losses, np.float64), [p.numpy().astype(np.float64) for p in model.parameters()]


def test_a_step_whose_scalars_change_compiles_once_and_equals_the_op_by_op_step():
    backend, losses, params = _train(defer=True)
    cache = backend._deferred
    # First sight op by op, then compiled (the first step has no update in front of it: a structure
    # of its own). Twice the steps: not one program more.
    assert 1 <= cache.compiles <= 3, f"compiles: got {cache.compiles} in {STEPS} steps; expected at most 3"
    longer = _train(defer=True, steps=2 * STEPS)[0]._deferred
    assert (longer.compiles, len(longer.seen)) == (cache.compiles, len(cache.seen))
    _, ref_losses, ref_params = _train(defer=False)
    assert np.abs(params[0] - _train(defer=False, steps=0)[2][0]).max() > 1e-3        # the updates did move it
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)


def test_float16_scalars_round_as_on_the_op_by_op_path():
    """The scalar ops compute half floats in float32 with the Python number weakly typed; a traced
    scalar must too (as a float16 constant it would round the scalar first)."""
    backend, losses, params = _train(defer=True, dtype="float16")
    assert backend._deferred.compiles >= 1
    _, ref_losses, ref_params = _train(defer=False, dtype="float16")
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-3)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p, q, rtol=2e-3, atol=2e-3)


def test_a_scalar_the_rule_branches_on_stays_in_the_structure():
    assert PowScalarOp.concrete == ("p",)
    backend = autodiff.new(JaxBackend(TEST_DEVICE))
    x = tensor.from_numpy(np.array([0.0, 1.5, -2.0], np.float32), backend)
    got = []
    for p in (2.0, 0.0, 2.0, 0.0, 3.0, 0.0):
        (x ** p).sum().backward()
        got.append(x.grad.numpy().copy())
        x.zero_grad()
    # p = 0: the constant 1, gradient 0 everywhere (x = 0 included); p = 2: 2x; p = 3: 3x²
    expected = {2.0: 2 * np.array([0.0, 1.5, -2.0]), 0.0: np.zeros(3), 3.0: 3 * np.array([0.0, 2.25, 4.0])}
    for p, g in zip((2.0, 0.0, 2.0, 0.0, 3.0, 0.0), got):
        np.testing.assert_allclose(g, expected[p], rtol=1e-6)
    assert backend._deferred.compiles >= 1        # p = 2 and p = 0 each repeated: compiled, each its own


def test_an_int_scalar_on_a_pending_index_is_an_argument_too():
    """``idx + k`` on an index the program computes: an int scalar, traced like a float one; the
    index is still checked against the table's size in the program."""
    backend = autodiff.new(JaxBackend(TEST_DEVICE))
    table = tensor.from_numpy(np.arange(20, dtype=np.float32).reshape(10, 2), backend)
    rows = tensor.from_numpy(np.array([0.0, 1.0, 2.0], np.float32), backend, requires_grad=False)
    for k in range(6):
        idx = (rows * 1.0).cast("int32") + k            # pending int: add_scalar with k traced
        picked = table.gather(0, idx.reshape(3, 1).expand(3, 2))
        picked.sum().backward()
        np.testing.assert_array_equal(picked.numpy()[:, 0], 2.0 * (np.arange(3) + k))
        g = np.zeros((10, 2), np.float32)
        g[np.arange(3) + k] = 1.0
        np.testing.assert_array_equal(table.grad.numpy(), g)
        table.zero_grad()
    assert backend._deferred.compiles >= 1
    with pytest.raises(Exception, match="index"):       # k = 9: row 11 of 10, caught by the program's check
        for k in (9, 9, 9):
            idx = (rows * 1.0).cast("int32") + k
            table.gather(0, idx.reshape(3, 1).expand(3, 2)).sum().backward()


@pytest.mark.parametrize("defer", [True, False])
def test_a_traced_scalar_is_refused_where_a_number_is_checked(defer):
    """Outside a program a scalar is still checked as a number (an int tensor takes no 0.5)."""
    backend = autodiff.new(JaxBackend(TEST_DEVICE), defer=defer)
    i = tensor.from_numpy(np.arange(3, dtype=np.int32), backend)
    with pytest.raises(TypeError, match="expected an integral value"):
        i + 0.5


def test_a_traced_scalar_under_a_users_jax_jit():
    """Tracers reach the scalar ops only from rules inside a program, or from a user's own jax
    transformation of jtape code: a float tensor takes one (the kernel traces it anyway); an
    integer tensor refuses it, since its value cannot be checked as a Python int is."""
    import jax
    from jtape.tensor.errors import DTypeError

    inner = JaxBackend(TEST_DEVICE)
    x = inner.from_numpy(np.array([1.0, 2.0], np.float32))
    i = inner.from_numpy(np.array([1, 2], np.int32))
    scaled = jax.jit(lambda s: inner.mul_scalar(x, s).data)(np.float32(1.5))
    np.testing.assert_array_equal(np.asarray(scaled), [1.5, 3.0])
    with pytest.raises(DTypeError, match=r"^add_scalar: got a traced scalar for a tensor of dtype int32; expected a "
                                         r"Python int"):
        jax.jit(lambda s: inner.add_scalar(i, s).data)(np.int32(2))
