"""jtape.jit checks an index that is an argument of the step on its concrete array, before the
program runs (its range read back once per array): no program output and no host sync per call —
and still every bound of every traced shape, and nothing changes when a check fails."""

from __future__ import annotations

import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ShapeError

from ..training import cross_entropy_step


def _setup():
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Linear(4, 3, backend, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)

    return backend, model, opt, jtape.jit(cross_entropy_step(model, opt), state=[model, opt])


def _ints(values, backend):
    return tensor.from_numpy(np.array(values, np.int32), backend)


def test_targets_given_to_the_step_are_checked_before_it_runs_and_nothing_changes():
    backend, model, opt, step = _setup()
    x = tensor.from_numpy(np.ones((5, 4), np.float32), backend, requires_grad=False)
    step(x, _ints([0, 1, 2, 0, 1], backend))
    before, steps = model.weight.numpy().copy(), opt.steps
    with pytest.raises(ShapeError, match=r"cross_entropy: got targets values in \[0, 3\]"):
        step(x, _ints([0, 1, 3, 0, 1], backend))
    np.testing.assert_array_equal(model.weight.numpy(), before)
    assert opt.steps == steps
    with pytest.raises(ShapeError, match=r"got targets values in \[-1, 2\]"):
        step(x, _ints([0, 1, 2, -1, 1], backend))
    # a new shape traces again (the check fails after that first run) and nothing changes either
    x2 = tensor.from_numpy(np.ones((2, 4), np.float32), backend, requires_grad=False)
    with pytest.raises(ShapeError, match=r"got targets values in \[0, 5\]"):
        step(x2, _ints([0, 5], backend))
    np.testing.assert_array_equal(model.weight.numpy(), before)
    assert opt.steps == steps


def test_the_program_returns_no_range_for_an_argument_index_but_does_for_a_computed_one():
    """Index ranges the program returns are read back (a host sync) after every call: none for
    targets given to the step; one for an index the step computes."""
    backend, model, opt, step = _setup()
    x = tensor.from_numpy(np.ones((5, 4), np.float32), backend, requires_grad=False)
    y = _ints([0, 1, 2, 0, 1], backend)
    step(x, y)
    _out, _state, ranges = step.lower(x, y).out_info
    assert ranges == []

    @jtape.jit
    def computed(x, y):
        return x.gather(1, (y + 0).reshape(5, 1)).sum()

    computed(x, y)
    _out, _state, ranges = computed.lower(x, y).out_info
    assert len(ranges) == 1


def test_each_traced_shape_checks_its_own_bound():
    """The bound of gather depends on the argument's shape: a retrace for a new shape must check
    the new bound, not the one of the first trace."""
    backend = autodiff.new(JaxBackend("cpu"))

    @jtape.jit
    def pick(x, index):
        return x.gather(1, index).sum()

    def call(n, k):
        x = tensor.from_numpy(np.arange(2.0 * n, dtype=np.float32).reshape(2, n), backend)
        return float(pick(x, _ints([[k], [0]], backend)).item())

    assert call(3, 2) == 2.0 + 3.0
    assert call(5, 4) == 4.0 + 5.0               # in range for n = 5, out of range for n = 3
    assert call(5, 4) == 4.0 + 5.0
    with pytest.raises(ShapeError, match=r"gather: got index values in \[0, 5\]"):
        call(5, 5)
    with pytest.raises(ShapeError, match=r"gather: got index values in \[0, 3\]"):
        call(3, 3)


def test_each_traced_shape_checks_its_own_bound_for_a_computed_index_too():
    """A check returned by the program is verified against the bound of the trace that made that
    program (they were once kept per mode only: the last trace's bound was used for every shape)."""
    backend = autodiff.new(JaxBackend("cpu"))

    @jtape.jit
    def pick(x, index):
        return x.gather(1, index + 0).sum()          # computed inside the step: checked by the program

    def call(n, k):
        x = tensor.from_numpy(np.arange(2.0 * n, dtype=np.float32).reshape(2, n), backend)
        return float(pick(x, _ints([[k], [0]], backend)).item())

    assert call(3, 2) == 2.0 + 3.0
    assert call(5, 4) == 4.0 + 5.0
    with pytest.raises(ShapeError, match=r"gather: got index values in \[0, 3\]"):
        call(3, 3)
    with pytest.raises(ShapeError, match=r"gather: got index values in \[0, 5\]"):
        call(5, 5)
