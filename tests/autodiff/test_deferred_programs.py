"""Deferred eager's programs: what a step's program returns, which walks run as one program, and
that the checks a program drops are the ones already made. Each structure is run three times:
seen (op by op), compiled, and run from the cache — every result must equal the op-by-op run."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.autodiff.programs import flat_inputs
from jtape.tensor.errors import ShapeError

from ..training import cross_entropy_step


def _backend(defer: bool):
    return autodiff.new(JaxBackend("cpu"), defer=defer)


def _mlp(backend):
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(6, 8, backend, seed=0), nn.ReLU(), nn.Linear(8, 3, backend, seed=1))
    x = tensor.from_numpy(rng.standard_normal((5, 6)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 3, 5).astype(np.int32), backend)
    return model, optim.SGD(model.parameters(), lr=0.1), x, y


def test_a_training_steps_program_returns_only_the_values_someone_holds():
    """The activations are read only by the walk inside the program: they are not outputs (XLA
    need not keep them); the loss, held by the caller, is. And the targets, whose values exist, were
    checked when cross_entropy was called: the program has no index check (no host sync)."""
    backend = _backend(True)
    model, opt, x, y = _mlp(backend)
    for _ in range(3):
        cross_entropy_step(model, opt)(x, y)
    cache = backend._deferred
    assert cache.compiles == 1                   # the step with its update joined
    (key, (_compiled, run)), = [(k, e) for k, e in cache.programs.items() if k.spec[0] != "update"]
    node_specs, _args, walk_spec, outputs = key.spec
    assert walk_spec is not None
    assert len(outputs) == 1 and node_specs[outputs[0]][0] == "cross_entropy", outputs
    assert run.checks == []


def _gradient_cases(backend):
    """TF-style gradient calls of every kind: several targets, an intermediate as a source, a
    constant intermediate, an unconnected source (None and zeros), a repeated source."""
    rng = np.random.default_rng(1)
    a = tensor.from_numpy(rng.standard_normal((3, 4)).astype(np.float32), backend)
    b = tensor.from_numpy(rng.standard_normal((4,)).astype(np.float32), backend)
    far = tensor.from_numpy(rng.standard_normal((2,)).astype(np.float32), backend)
    h = (a * b).tanh()
    with backend.no_grad():
        c = a * 2.0
    t1 = (h * c).sum()
    t2 = (h.exp() + b).mean()
    tape = backend.tape()
    out = []
    out += tape.gradient([t1, t2], [a, b, h])
    out += tape.gradient(t1, [a, c, far, a])
    out += tape.gradient(t2, {"b": b, "far": far}, unconnected_gradients="zero").values()
    tape.clear()
    return [None if g is None else g.numpy() for g in out]


def test_gradient_calls_run_as_one_program_and_equal_op_by_op():
    want = _gradient_cases(_backend(False))
    backend = _backend(True)
    for _ in range(3):
        got = _gradient_cases(backend)
        assert [g is None for g in got] == [g is None for g in want]
        for g, w in zip(got, want):
            if w is not None:
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    assert backend._deferred.compiles >= 1


def test_a_kept_tape_keeps_its_pending_values_readable_and_walkable():
    """gradient() keeps the tape: values only the tape holds stay pending (parked), and a
    later read or walk computes them; once the tape is cleared they are dropped unrun."""
    def run(backend):
        x = tensor.from_numpy(np.array([0.5, -1.0, 2.0], np.float32), backend)
        hs = []
        for _ in range(3):
            h = (x * 1.5).sin()
            loss = (h * h).sum()
            g1, = backend.tape().gradient(loss, [x])
            g2, = backend.tape().gradient(loss, [x])          # walks the kept tape again
            hs.append((g1.numpy(), g2.numpy(), h.numpy(), backend.tape().operations()[0].output().value()))
            backend.tape().clear()
        return hs

    want = run(_backend(False))
    backend = _backend(True)
    got = run(backend)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    for _ in range(20):                      # queued values of cleared tapes do not pile up
        x = tensor.from_numpy(np.ones(3, np.float32), backend)
        loss = ((x * 2.0).sin() * 3.0).sum()
        backend.tape().gradient(loss, [x])
        backend.tape().clear()
    assert len(backend._deferred.nodes) <= 3


def test_a_cleared_tapes_parked_ops_are_dropped_without_a_walk_over_them(monkeypatch):
    """The ops a kept tape's program did not return are parked apart; once the tape is cleared the
    next flush drops them after one reference count each — ``describe`` never sees them, so a
    gradient-then-clear loop costs the same every step — and a second walk of a tape that is kept
    still finds them (the test above)."""
    from jtape.autodiff import deferred

    backend = _backend(True)
    x = tensor.from_numpy(np.array([0.5, -1.0, 2.0], np.float32), backend)
    seen: list[int] = []
    real = deferred.describe
    monkeypatch.setattr(deferred, "describe", lambda nodes, *rest: (seen.append(len(nodes)), real(nodes, *rest))[1])

    def step():
        loss = ((x * 2.0).sin() * 3.0).exp().sum()       # 5 pending ops: the program returns only the loss
        g, = backend.tape().gradient(loss, [x])
        return loss, g

    step()                                               # first sight: op by op
    backend.tape().clear()
    _, g0 = step()                                       # compiled: one program
    parked = backend._deferred.parked
    assert parked is not None and len(parked[0]) == 4    # the four intermediates only the tape holds
    held = [weakref.ref(node.out()) for node in parked[0]]
    del parked
    backend.tape().clear()
    for _ in range(3):
        seen.clear()
        loss, g = step()
        assert seen == [5], seen                         # this step's ops only
        assert all(h() is None for h in held)            # dropped, never run (nothing held them)
        backend.tape().clear()
    np.testing.assert_allclose(g.numpy(), g0.numpy(), rtol=1e-6)
    assert backend._deferred.parked is not None and not backend._deferred.nodes


@pytest.mark.parametrize("program", ["chain", "squares", "stacked", "two_uses"])
def test_parked_ops_counts_read_off_the_structure_equal_counting_their_inputs(program):
    """The references the parked ops' inputs hold to each parked result are read off the program's
    structure once (``programs.parking``), not counted per step: they must equal counting the parked
    ops' inputs by identity — a result read twice (h * h), by a sequence parameter (stack), by two
    ops — or an unpark would drop an op someone still reads (too high) or keep one for ever (too low).
    Each structure three times: op by op, compiled, and from the cache."""
    backend = _backend(True)
    x = tensor.from_numpy(np.array([0.5, -1.0, 2.0], np.float32), backend)

    def step():
        h = (x * 1.5).sin()
        if program == "chain":
            out = (h.exp() * 2.0).tanh()
        elif program == "squares":
            out = (h * h).cos() * (h * h)
        elif program == "stacked":
            out = tensor.stack([h, h.exp(), h], 0).sin()
        else:
            a = h.exp()
            out = a.sin() + a.cos() * h
        return out.sum()

    for i in range(3):
        loss = step()
        g, = backend.tape().gradient(loss, [x])
        parked = backend._deferred.parked
        assert (parked is None) == (i == 0)              # first sight runs op by op: nothing parked
        if parked is not None:
            nodes, counts = parked
            outs = [node.out() for node in nodes]
            by_identity = [sum(t is out for node in nodes for t in flat_inputs(node.inputs)) for out in outs]
            assert counts == by_identity
            assert len(nodes) >= 2 and any(c > 0 for c in counts)
            nodes = outs = parked = None
        h_value = backend.tape().operations()[1].output().value()      # unparks: the tape still holds it
        np.testing.assert_allclose(np.asarray(h_value), np.sin(np.array([0.5, -1.0, 2.0]) * 1.5), rtol=1e-6)
        backend.tape().clear()


@pytest.mark.parametrize("program", ["on_the_tape", "not_recorded_between", "update_by_hand"])
def test_described_uses_are_the_walked_tapes_references_to_each_pending_result(program, monkeypatch):
    """``describe``'s ``uses`` — per pending op, how many references the walked tape holds to its
    result (an op's output and inputs) — decide which results a program returns: too few and a
    value someone holds is never computed; too many and XLA writes out what nobody reads. Checked
    against counting the tape's references by identity, for a step whose pending ops are all on the
    tape (``inner`` reused) and steps with pending ops that are not (recorded under no_grad)."""
    from jtape.autodiff import deferred

    real, checked = deferred.describe, []

    def describe(nodes, outs, walk):
        got = real(nodes, outs, walk)
        if walk is not None:
            tape_ops = walk[0]
            want = [sum((op.output() is out) + sum(x is out for x in op.inputs()) for op in tape_ops) for out in outs]
            assert got.uses == want
            checked.append(len(nodes) - len(tape_ops))
        return got
    monkeypatch.setattr(deferred, "describe", describe)
    backend = _backend(True)
    x = tensor.from_numpy(np.array([0.5, -1.0, 2.0], np.float32), backend)
    w = tensor.from_numpy(np.array([1.5, 0.5, -2.0], np.float32), backend)
    for _ in range(3):
        h = (x * w).sin()
        if program == "not_recorded_between":
            with backend.no_grad():
                s = h * 2.0                     # pending, not on the tape, reads a taped result
            loss = (h * h).sum() + (s * 0.0).sum().detach()
        else:
            loss = (h * h + h.exp()).sum()
        loss.backward()
        if program == "update_by_hand":         # pending ops of the update, flushed with the next step
            with backend.no_grad():
                x.assign((x - 0.1 * x.grad).raw())
            x.requires_grad_()
        x.grad = w.grad = None
    assert checked and all(n >= 0 for n in checked)
    if program != "on_the_tape":
        assert any(n > 0 for n in checked)        # some described step had pending ops off the tape


def test_a_computed_index_out_of_range_raises_from_the_compiled_program_too():
    backend = _backend(True)
    x = tensor.from_numpy(np.arange(6.0, dtype=np.float32).reshape(2, 3), backend)

    def step(shift: float):
        s = tensor.from_numpy(np.array([[shift]], np.float32), backend, requires_grad=False)
        index = (x.sum_dim(1, True) * 0.0 + s).cast("int32")     # pending: checked by the program
        x.gather(1, index).sum().backward()

    step(1.0)
    step(2.0)                                         # the same structure: compiled now
    assert backend._deferred.compiles == 1
    with pytest.raises(ShapeError, match=r"gather: got index values in \[5, 5\]"):
        step(5.0)                                     # from the cached program


def test_a_remembered_index_range_still_checks_every_bound():
    """The range of an index array is read back once and remembered; each op still compares it with
    its own bound, and a new array with other values is read again."""
    backend = _backend(True)
    y = tensor.from_numpy(np.array([0, 2, 1], np.int32), backend)
    wide = tensor.from_numpy(np.zeros((3, 3), np.float32), backend)
    narrow = tensor.from_numpy(np.zeros((3, 2), np.float32), backend)
    for _ in range(2):
        wide.cross_entropy(y)
        with pytest.raises(ShapeError, match=r"cross_entropy: got targets values in \[0, 2\]"):
            narrow.cross_entropy(y)
    y_bad = tensor.from_numpy(np.array([0, 3, 1], np.int32), backend)
    with pytest.raises(ShapeError, match=r"got targets values in \[0, 3\]"):
        wide.cross_entropy(y_bad)


def test_a_pending_tensor_held_only_in_the_callers_tuple_of_inputs_keeps_its_value():
    """``backend.stack(parts)`` with the caller's own tuple of RawTensors: the pending op keeps a
    tuple of its own, so the caller's tuple still counts as an outside reference to each part."""
    backend = _backend(True)
    x = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    for _ in range(3):                                    # seen, compiled, cached
        parts = ((x * 2.0).raw(), (x * 3.0).raw())
        stacked = backend.stack(parts, 0)
        loss = tensor.Tensor(stacked, backend).sum()
        loss.backward()
        np.testing.assert_array_equal(np.asarray(parts[0].value()), [2.0, 4.0])
        np.testing.assert_array_equal(np.asarray(parts[1].value()), [3.0, 6.0])
        np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0])
        x.zero_grad()


def test_a_value_only_a_released_tape_held_raises_instead_of_reading_nothing():
    """A result held only by the recorded ops is not computed by the step's program; once backward()
    released the tape, reading it through a kept Operation raises a TapeError that says why."""
    from jtape.tensor.errors import TapeError

    backend = _backend(True)
    x = tensor.from_numpy(np.ones(2, np.float32), backend)
    for step in range(3):
        loss = (x * 2.0).sin().sum()
        ops = backend.tape().operations()
        loss.backward()
        if step == 0:                       # first sight: op by op, every value computed
            np.testing.assert_array_equal(np.asarray(ops[0].output().value()), [2.0, 2.0])
        else:
            with pytest.raises(TapeError, match="only the recorded ops held"):
                ops[0].output().value()
