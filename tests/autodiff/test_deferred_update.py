"""Deferred eager with the optimizer's update joined to the step's program.

Once a step's program is compiled, ``Tensor.backward()`` hands out pending gradients and waits; an
``opt.step()`` right after it joins the update to the program (forward, walk and update run as
one). Everything a user can do between ``backward`` and ``step`` — read a gradient, clip, record
more ops, call ``backward`` again, step a second optimizer, change a learning rate — must give what
the op-by-op run gives. Each case runs enough steps to reach the joined program (step 2 on; step 4
on where a step's program first ran alone)."""

from __future__ import annotations

import numpy as np
import optax
import pytest

from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ArgumentError, ShapeError

STEPS = 7


def _setup(defer: bool, make_opt, *, unused: bool = False):
    backend = autodiff.new(JaxBackend("cpu"), defer=defer)
    model = nn.Sequential(nn.Linear(6, 8, backend, seed=0), nn.ReLU(), nn.Linear(8, 3, backend, seed=1))
    params = model.parameters()
    if unused:                  # a parameter no loss reaches: its gradient is None (zeros for the update)
        model.spare = nn.Parameter(tensor.from_numpy(np.ones((4,), np.float32), backend))
        params = model.parameters()
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((5, 6)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 3, 5).astype(np.int32), backend)
    return backend, model, make_opt(params), x, y


def _run(defer: bool, step, make_opt=lambda ps: optim.Adam(ps, lr=0.05), **kw):
    """``step(ctx, i)`` for STEPS steps; returns the record it made, the parameters and the backend."""
    backend, model, opt, x, y = _setup(defer, make_opt, **kw)
    ctx = {"backend": backend, "model": model, "opt": opt, "x": x, "y": y, "record": []}
    for i in range(STEPS):
        step(ctx, i)
    return ctx["record"], [p.numpy() for p in model.parameters()], backend


def _joined_programs(backend) -> int:
    return sum(1 for key in backend._deferred.programs if key.spec[0] == "update")


def _same(step, make_opt=lambda ps: optim.Adam(ps, lr=0.05), joined: bool = True, **kw):
    rec_d, params_d, backend = _run(True, step, make_opt, **kw)
    rec_o, params_o, _ = _run(False, step, make_opt, **kw)
    assert len(rec_d) == len(rec_o)
    for a, b in zip(rec_d, rec_o):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(params_d, params_o):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert (_joined_programs(backend) >= 1) is joined, backend._deferred.programs.keys()
    assert backend._deferred.prepared is None
    return backend


def _loss(ctx):
    return ctx["model"](ctx["x"]).cross_entropy(ctx["y"])


def test_plain_steps_join_the_update_and_equal_op_by_op():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step()
        ctx["record"].append(loss.numpy())
        ctx["opt"].zero_grad()
    backend = _same(step)
    assert backend._deferred.compiles == 1       # the step with its update: the step alone never ran


def test_zero_grad_before_backward_as_in_pytorch_joins_the_update():
    def step(ctx, i):
        ctx["opt"].zero_grad()
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step()
        ctx["record"].append(loss.numpy())
    backend = _same(step)
    assert backend._deferred.compiles == 1


# -- gradients the joined program does not return (``Owed``) -------------------------------------------
# The joined program leaves the gradients out of its results until one is read after its step; a read
# runs the step's backward program again on the step's own arrays (the parameters before the update),
# and from then on the joined program returns them. Every read gives what op by op gives.
def _owed(backend, model) -> list:
    from jtape.autodiff.promised import Owed
    return [p.raw().grad.data[0] for p in model.parameters()
            if p.raw().grad is not None and isinstance(p.raw().grad.data[0], Owed)]


def test_gradients_read_after_every_step_are_the_steps_own():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step()
        ctx["record"].append(loss.numpy())
        ctx["record"] += [p.grad.numpy() for p in ctx["model"].parameters()]   # read after the step
        ctx["opt"].zero_grad()
    backend = _same(step)
    # the joined step without its gradients, the step's backward alone (for the first read), then the
    # joined step that returns them — and no more: every later read finds them computed
    assert backend._deferred.compiles == 3


def test_a_gradient_read_after_one_step_only_and_the_steps_after_it():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step()
        ctx["record"].append(loss.numpy())
        if i == 4:
            ctx["record"].append(ctx["model"].parameters()[2].grad.numpy())
            assert not _owed(ctx["backend"], ctx["model"])       # one read computed every gradient
        elif i > 1 and ctx["backend"].is_deferred():
            assert len(_owed(ctx["backend"], ctx["model"])) == (4 if i < 4 else 0)
        ctx["opt"].zero_grad()
    _same(step)


def test_gradients_kept_over_steps_accumulate_as_op_by_op():
    """No zero_grad: each backward adds into the .grad the step before left. The sum reads the waiting
    gradients, so they are computed apart and no update joins (nothing is owed)."""
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step()
        ctx["record"].append(loss.numpy())
        if i == STEPS - 1:
            ctx["record"] += [p.grad.numpy() for p in ctx["model"].parameters()]
    _same(step, make_opt=lambda ps: optim.SGD(ps, lr=0.05), joined=False)   # each sum is computed apart


def test_an_input_that_wants_a_gradient_gets_its_own_after_the_step():
    def step(ctx, i):
        x = ctx["x"].detach().requires_grad_()
        loss = ctx["model"](x).cross_entropy(ctx["y"])
        loss.backward()
        ctx["opt"].step()
        ctx["opt"].zero_grad()
        ctx["record"] += [loss.numpy(), x.grad.numpy(), x.grad.detach().numpy()]
    _same(step)


def test_an_owed_gradient_used_by_an_op_and_detached():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step()
        w = ctx["model"].parameters()[0]
        ctx["record"] += [(w.grad * 2.0).sum().numpy(), w.grad.detach().numpy()]
        ctx["opt"].zero_grad()
    _same(step)


def test_dropped_gradients_free_what_the_step_kept_for_them():
    """The owed gradients keep the step's arrays (the batch, the parameters before the update) only
    while one of them is held: zero_grad drops them, and with them those arrays."""
    import gc
    import weakref
    backend, model, opt, x, y = _setup(True, lambda ps: optim.SGD(ps, lr=0.1))
    for _ in range(3):            # seen, then joined
        model(x).cross_entropy(y).backward()
        opt.step()
        opt.zero_grad()
    gc.disable()                  # freed by reference counting alone: no cycle holds them
    try:
        model(x).cross_entropy(y).backward()
        opt.step()
        owed = weakref.ref(_owed(backend, model)[0])
        kept = owed().arrays
        olds = [weakref.ref(a) for a in kept if hasattr(a, "shape") and a.ndim == 2]
        del kept
        assert owed() is not None and all(r() is not None for r in olds)
        opt.zero_grad()
        assert owed() is None
        assert all(r() is None for r in olds if r() is not x.data)
    finally:
        gc.enable()


def test_sgd_with_a_learning_rate_changed_every_step():
    def step(ctx, i):
        ctx["opt"].param_groups[0]["lr"] = 0.1 / (i + 1)
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step()
        ctx["opt"].zero_grad()
        ctx["record"].append(loss.numpy())
    _same(step, make_opt=lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9))


def test_a_parameter_without_gradient_gets_zeros_in_the_joined_update():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        assert ctx["model"].spare.grad is None
        ctx["opt"].step()
        ctx["opt"].zero_grad()
        ctx["record"].append(loss.numpy())
    _same(step, make_opt=lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.1), unused=True)


def test_reading_a_gradient_before_the_step_runs_the_program_without_the_update():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        ctx["record"].append(ctx["model"].parameters()[0].grad.numpy())
        ctx["opt"].step()
        ctx["opt"].zero_grad()
    _same(step, joined=False)


def test_clipping_between_backward_and_step():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        norm = optim.clip_grad_norm_(ctx["model"].parameters(), 0.5)
        ctx["opt"].step()
        ctx["opt"].zero_grad()
        ctx["record"] += [loss.numpy(), norm.numpy()]
    _same(step, joined=False)


def test_accumulating_two_backwards_before_a_step():
    def step(ctx, i):
        half = ctx["x"] * 0.5
        _loss(ctx).backward()
        ctx["model"](half).cross_entropy(ctx["y"]).backward()   # recorded after a waiting backward
        ctx["opt"].step()
        ctx["opt"].zero_grad()
        ctx["record"].append(ctx["model"].parameters()[1].numpy())
    _same(step, joined=False)         # the sum of the two gradients is computed apart: no join


def test_two_optimizers_after_one_backward():
    """The first optimizer's update joins the program; the second reads gradients that exist."""
    def make(ps):
        return [optim.SGD(ps[:2], lr=0.1), optim.Adam(ps[2:], lr=0.01)]

    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        for opt in ctx["opt"]:
            opt.step()
            opt.zero_grad()
        ctx["record"].append(loss.numpy())
    _same(step, make_opt=make)


def test_an_unstepped_backward_runs_when_the_next_op_is_recorded():
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        if i % 2:
            ctx["opt"].step()
        else:                     # no step: the waiting program runs at the next op
            ctx["record"].append(loss.numpy())
        ctx["opt"].zero_grad()
    _same(step)                       # the steps that do step join


def test_a_transform_watching_the_loss():
    def make(ps):
        tx = optax.chain(optax.sgd(0.1), optax.contrib.reduce_on_plateau(patience=1, factor=0.5))
        return optim.Optimizer(ps, tx)

    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        ctx["opt"].step(value=loss)
        ctx["opt"].zero_grad()
        ctx["record"].append(loss.numpy())
    _same(step, make_opt=make, joined=False)     # value= reads the loss: the program runs first


def test_a_missing_value_raises_and_every_promised_value_is_still_computed():
    """The joined program's trace fails (the transform needs value=): the error is the optimizer's
    ArgumentError, and the loss and gradients the backward promised are computed all the same."""
    tx = optax.chain(optax.sgd(0.1), optax.contrib.reduce_on_plateau(patience=1))
    backend, model, opt, x, y = _setup(True, lambda ps: optim.Optimizer(ps, tx))
    for _ in range(3):
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step(value=loss)
        opt.zero_grad()
    params = [p.numpy() for p in model.parameters()]
    for _ in range(2):      # seen once, then joined: the trace meets the missing value
        loss = model(x).cross_entropy(y)
        loss.backward()
        with pytest.raises(ArgumentError, match="value="):
            opt.step()
        assert backend._deferred.prepared is None
        assert np.isfinite(loss.item())
        assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters())
        opt.zero_grad()
    assert _joined_programs(backend) == 1          # the second time, the joined program's trace raised
    for p, before in zip(model.parameters(), params):
        np.testing.assert_array_equal(p.numpy(), before)       # no update happened


def test_a_pending_index_out_of_range_raises_from_backward_itself():
    """A program that checks index values does not wait for an update: the error comes from the
    backward() that caused it (here no accumulation into .grad reads the gradient first)."""
    backend = autodiff.new(JaxBackend("cpu"))
    x = tensor.from_numpy(np.arange(6.0, dtype=np.float32).reshape(2, 3), backend)

    def step(shift: float):
        s = tensor.from_numpy(np.array([[shift]], np.float32), backend, requires_grad=False)
        index = (x.sum_dim(1, True) * 0.0 + s).cast("int32")     # pending: checked by the program
        x.gather(1, index).sum().backward()
        x.zero_grad()

    for shift in (1.0, 2.0, 0.0):                     # seen, compiled, cached
        step(shift)
    with pytest.raises(ShapeError, match=r"gather: got index values in \[5, 5\]"):
        step(5.0)
    assert backend._deferred.prepared is None


# -- an update written by hand: the next program reads the waiting one's gradients (``_chain``) --------
def _chains(backend) -> int:
    return sum(1 for key in backend._deferred.programs if key.spec[0] == "chain")


def _update_by_hand(ctx, lr=0.1):
    with ctx["backend"].no_grad():
        for p in ctx["model"].parameters():
            p.assign((p - lr * p.grad).raw())       # made under no_grad: wants gradients again
            p.requires_grad_()
            p.grad = None


@pytest.mark.parametrize("read", ["every step", "at the end"])
def test_an_update_written_by_hand_runs_in_one_program_with_the_step_it_reads(read):
    """``p - lr * p.grad`` reads the pending gradients of the waiting backward: the next flush runs
    that backward's program and the ops reading it as one program (a chain), and the values equal
    op by op's — whether the loss is read every step (a flush with no walk) or only at the end."""
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        _update_by_hand(ctx)
        if read == "every step" or i == STEPS - 1:
            ctx["record"].append(loss.numpy())
    backend = _same(step, joined=False)
    assert _chains(backend) == 1
    assert backend._deferred.compiles <= 3      # the step alone (waits), the chain, and no more


@pytest.mark.parametrize("held", ["the gradients", "the old parameters"])
def test_a_chained_steps_gradients_read_later_are_its_own(held):
    """Held as gradients, the chained program returns them; reached only through the parameters'
    RawTensors from before the update (their ``.grad``), they are left pending (Owed), and a read
    computes them. Either way they are the step's own."""
    from jtape.autodiff.promised import Owed

    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        params = ctx["model"].parameters()
        kept = [p.grad.raw() for p in params] if held == "the gradients" else [p.raw() for p in params]
        _update_by_hand(ctx, lr=0.05)
        ctx["record"].append(loss.numpy())          # the flush: the chain, on the steps that wait
        grads = kept if held == "the gradients" else [r.grad for r in kept]
        if ctx["backend"].is_deferred() and i in (3, 5):     # chained steps (2 waits, 3 chains, ...)
            owed = [g.data.__class__ is not np.ndarray and isinstance(g.data[0], Owed) for g in grads
                    if not hasattr(g.data, "shape")]
            assert owed == ([] if held == "the gradients" else [True] * 4)
        ctx["record"] += [np.asarray(g.value()) for g in grads]        # read after the chain consumed them
    backend = _same(step, joined=False)
    assert _chains(backend) == 1


def test_gradients_read_by_a_value_before_the_next_step():
    """A value computed from the waiting gradients (a norm read with .item()) flushes them and that
    op together; the optimizer then steps with gradients that exist."""
    def step(ctx, i):
        loss = _loss(ctx)
        loss.backward()
        norm = sum((p.grad * p.grad).sum() for p in ctx["model"].parameters())
        ctx["record"] += [np.float32(norm.item()), loss.numpy()]
        assert all(hasattr(p.grad.raw().data, "shape") for p in ctx["model"].parameters())   # returned
        ctx["opt"].step()
        ctx["opt"].zero_grad()
    backend = _same(step, joined=False)
    assert _chains(backend) == 1


@pytest.mark.parametrize("first", ["copies", "the compiled step"])
def test_owed_gradients_carried_into_a_compiled_step_and_copies(first):
    """Gradients the last joined eager step left owed (zero_grad comes first in this loop, as in
    PyTorch) are what a deep copy or a pickle of the model holds, and what a jtape.jit step without
    zero_grad then adds to — whichever reads them first; as op by op."""
    import copy
    import pickle

    import jtape

    def run(defer):
        backend, model, opt, x, y = _setup(defer, lambda ps: optim.SGD(ps, lr=0.1))
        for _ in range(4):
            opt.zero_grad()
            model(x).cross_entropy(y).backward()
            opt.step()
        assert len(_owed(backend, model)) == (4 if defer else 0)

        def step(x, y):
            loss = model(x).cross_entropy(y)
            loss.backward()
            opt.step()
            return loss
        compiled = jtape.jit(step, state=[model, opt])
        losses = [] if first == "copies" else [compiled(x, y).numpy() for _ in range(2)]
        copies = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
        losses += [compiled(x, y).numpy() for _ in range(2)]
        return (losses + [p.numpy() for p in model.parameters()] + [p.grad.numpy() for p in model.parameters()]
                + [p.grad.numpy() for m in copies for p in m.parameters()])

    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
