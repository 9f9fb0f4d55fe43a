"""Scalars that change every step do not change a deferred step's program; they reach it as arrays.

A deferred program is cached by the step's structure. A Python number given to an op (mul_scalar's
value, leaky_relu's slope, pad's fill value, a learning rate in a hand-written update) is an
argument of the program, not part of its structure, so a step whose numbers change each time — a
decaying learning rate, an annealed temperature — is compiled once, as jax.jit compiles a function
once for every value of a float argument. Before, every such step was a new structure: it never
compiled and ran op by op, silently slower. Only a scalar that a rule branches on stays part of the
structure (``Operation.concrete``: pow_scalar's exponent).

Checked: such steps compile a bounded number of programs, and give what the op-by-op path gives —
values, gradients and trained parameters — in float32 and float16, and an int scalar on a pending
index. The program takes each scalar as the 0-d array jit would make of it, kept for recent values
(``programs.scalar_arguments``: a Python number would be put on the device at every call): exact for
signed zeros, NaNs, infinities and denormals in every float dtype, and per x64 mode."""

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


# -- the scalars as arrays: a program takes each traced scalar as a 0-d array, kept for recent values ----

def _bits(a: np.ndarray) -> tuple:
    """Everything that tells two results apart: the dtype and the bytes (a zero's sign, a NaN)."""
    a = np.asarray(a)
    return str(a.dtype), a.tobytes()


def _scaled(defer: bool, values: list, dtype: str = "float32") -> list:
    """``x * s + s`` read back for each s, a step each (the same structure: compiled from the second)."""
    backend = autodiff.new(JaxBackend(TEST_DEVICE), defer=defer)
    x = tensor.from_numpy(np.array([1.0, -2.0, 0.1], np.float32), backend)
    x = x if dtype == "float32" else x.to(dtype)
    return [((x * s) + s).numpy() for s in values]


SPECIAL = [0.0, -0.0, 0.0, -0.0, float("nan"), 1.0, float("nan"), float("inf"), -float("inf"), 0.1, 0.1, -0.0,
           3, 3, 0, -1, 1e-45, -1e-45, 1e-45]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_special_scalars_are_exact(dtype, monkeypatch):
    """A zero's sign (0.0 == -0.0, one hash), NaN (not equal to itself), ±inf, ints and denormals:
    each step's result is, to the bit, what the same program gives when handed the Python number
    itself (jit's own conversion) — a scalar's array kept for one value is never handed out for
    another that compares equal — and what the op-by-op path gives (to rounding: a program may fuse
    ``x * s + s``), with the same zero signs, NaNs and infinities."""
    from jtape.autodiff import deferred

    got = _scaled(True, SPECIAL, dtype)
    ops = _scaled(False, SPECIAL, dtype)
    monkeypatch.setattr(deferred, "scalar_arguments", list)       # the numbers themselves
    assert [_bits(a) for a in got] == [_bits(a) for a in _scaled(True, SPECIAL, dtype)]
    for a, b in zip(got, ops):
        a, b = a.astype(np.float64), b.astype(np.float64)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
        np.testing.assert_allclose(a, b, rtol=1e-2 if dtype in ("float16", "bfloat16") else 1e-6, equal_nan=True)


def test_scalar_arrays_follow_jaxs_x64_mode(monkeypatch):
    """The same Python number is float32 without x64 and float64 with it: an array kept from one mode
    is not used in the other (0.1 in float32 would change a float64 step's result)."""
    import jax

    from jtape.autodiff import deferred, programs

    def scaled(dtype: str) -> list:
        return [_bits(a) for a in _scaled(True, [0.1, 0.1, 0.1], dtype)]

    with monkeypatch.context() as m:
        m.setattr(deferred, "scalar_arguments", list)      # the numbers themselves
        with_x64 = scaled("float64")
        with jax.enable_x64(False):
            without = scaled("float32")
    monkeypatch.setattr(programs, "_SCALAR_ARRAYS", {})
    with jax.enable_x64(False):
        assert scaled("float32") == without        # a float32 array kept for 0.1 ...
    assert scaled("float64") == with_x64           # ... is not the float64 step's


def test_scalar_arguments_are_what_jit_makes_of_the_number_and_the_kept_arrays_are_bounded():
    import jax

    from jtape.autodiff import programs

    for v in (0.5, -0.0, 2, True, np.float32(1.5), np.int32(7), 1e300):
        (a,) = programs.scalar_arguments([v])
        traced = jax.jit(lambda s: s)(v)              # what jit makes of a number it is given
        assert (a.dtype, a.weak_type, _bits(a)) == (traced.dtype, traced.weak_type, _bits(traced)), v
    for i in range(3 * programs.MAX_SCALAR_ARRAYS):      # a learning rate that changes every step
        programs.scalar_arguments([1.0 / (i + 1)])
        assert len(programs._SCALAR_ARRAYS) <= programs.MAX_SCALAR_ARRAYS
    a, b = programs.scalar_arguments([0.25]), programs.scalar_arguments([0.25])
    assert a[0] is b[0]                                   # a repeated value: the same array, no new transfer


def test_a_deferred_program_is_called_with_arrays_only(monkeypatch):
    """The point of it: no Python number reaches the jitted program (jax would put it on the device
    at every call)."""
    import jax

    from jtape.autodiff import jitted

    calls = []
    plain = jitted.Jitted.__call__

    def spy(self, *args):
        calls.append(jax.tree_util.tree_leaves(args))
        return plain(self, *args)

    monkeypatch.setattr(jitted.Jitted, "__call__", spy)
    _train(defer=True, steps=4)
    assert calls, "no deferred program ran"
    assert all(isinstance(leaf, jax.Array) for leaves in calls for leaf in leaves), \
        [type(leaf).__name__ for leaves in calls for leaf in leaves if not isinstance(leaf, jax.Array)]
