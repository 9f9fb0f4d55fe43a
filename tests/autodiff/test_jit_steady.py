"""jtape.jit's steady state (``jtape.autodiff.steady``): a call that finds everything as the last
call left it skips looking its program up. Whatever a user changes between two calls — a learning
rate, a parameter, a flag, the mode, a seed, the batch — must take the full path, so each case runs
twice, with the steady path and with it switched off, and the two must agree bit for bit (the
same program runs on the same arrays). The plain loop must take the steady path (or the cases
would prove nothing)."""

from __future__ import annotations

import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.autodiff import steady as steady_module
from jtape.backends import JaxBackend

STEPS = 6


def _setup(optimizer: str = "sgd", dropout: bool = False):
    backend = autodiff.new(JaxBackend("cpu"))
    layers = [nn.Linear(5, 8, backend, seed=0), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.3))
    layers.append(nn.Linear(8, 3, backend, seed=1))
    model = nn.Sequential(*layers)
    params = model.parameters()
    opt = optim.SGD(params, lr=0.1, momentum=0.9) if optimizer == "sgd" else optim.Adam(params, lr=1e-2)
    rng = np.random.default_rng(0)
    batches = [(tensor.from_numpy(rng.standard_normal((4, 5)).astype(np.float32), backend, requires_grad=False),
                tensor.from_numpy(rng.integers(0, 3, 4).astype(np.int32), backend)) for _ in range(STEPS)]
    return backend, model, opt, batches


def _step(model, opt, zero: bool = True):
    def step(x, y):
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        if zero:
            opt.zero_grad()
        return loss
    return step


def _run(between, *, steady: bool, optimizer: str = "sgd", dropout: bool = False, zero: bool = True,
         call=None, monkeypatch=None) -> tuple[list, list, int]:
    """Run STEPS compiled steps, calling ``between(i, backend, model, opt, batches)`` before step i;
    returns the losses, the final parameters and how many calls took the steady path."""
    jtape.random.seed(0)
    backend, model, opt, batches = _setup(optimizer, dropout)
    run = jtape.jit(_step(model, opt, zero), state=[model, opt])
    hits = []
    real = steady_module.Steady.match

    def match(self, args, kwargs):
        found = real(self, args, kwargs) if steady else None
        hits.append(found is not None)
        return found
    monkeypatch.setattr(steady_module.Steady, "match", match)
    losses = []
    for i in range(STEPS):
        x, y = batches[i]
        x, y = between(i, backend, model, opt, (x, y)) or (x, y)
        loss = (call or (lambda r, x, y: r(x, y)))(run, x, y)
        losses.append(float(loss.item()))
    monkeypatch.setattr(steady_module.Steady, "match", real)
    return losses, [p.numpy() for p in model.parameters()], sum(hits)


def _agree(between, monkeypatch, **kw) -> int:
    fast = _run(between, steady=True, monkeypatch=monkeypatch, **kw)
    full = _run(between, steady=False, monkeypatch=monkeypatch, **kw)
    assert fast[0] == full[0]
    for a, b in zip(fast[1], full[1]):
        np.testing.assert_array_equal(a, b)
    assert full[2] == 0
    return fast[2]


def _nothing(i, backend, model, opt, batch):
    return None


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_plain_loop_takes_the_steady_path_after_its_first_call(monkeypatch, optimizer):
    assert _agree(_nothing, monkeypatch, optimizer=optimizer) == STEPS - 1


def test_a_learning_rate_changed_between_calls_is_used(monkeypatch):
    def lr(i, backend, model, opt, batch):
        if i == 3:
            opt.param_groups[0]["lr"] = 0.5
    hits = _agree(lr, monkeypatch)
    assert hits == STEPS - 2          # step 3 takes the full path (a new optimizer state), then steady again
    # and the new rate did change the trajectory
    plain = _run(_nothing, steady=True, monkeypatch=monkeypatch)
    changed = _run(lr, steady=True, monkeypatch=monkeypatch)
    assert plain[0][:4] == changed[0][:4] and plain[0][4:] != changed[0][4:]


def test_a_parameter_assigned_between_calls_is_used(monkeypatch):
    def assign(i, backend, model, opt, batch):
        if i == 2:
            w = model.parameters()[0]
            w.assign(tensor.from_numpy(np.full(tuple(w.shape), 0.01, np.float32), backend).raw())
    assert _agree(assign, monkeypatch) == STEPS - 2


def test_a_parameter_changed_by_an_eager_op_between_calls_is_used(monkeypatch):
    def shrink(i, backend, model, opt, batch):
        if i == 2:
            with backend.no_grad():
                for p in model.parameters():
                    p.assign((p * 0.5).raw())      # pending (deferred eager) until the call reads it
                    p.requires_grad_()             # (made under no_grad: wants gradients again)
    assert _agree(shrink, monkeypatch) == STEPS - 2


def test_requires_grad_switched_off_between_calls_is_seen(monkeypatch):
    def freeze(i, backend, model, opt, batch):
        if i == 2:
            model.parameters()[0].requires_grad_(False)
    _agree(freeze, monkeypatch)
    frozen = _run(freeze, steady=True, monkeypatch=monkeypatch)[1][0]
    plain = _run(_nothing, steady=True, monkeypatch=monkeypatch)[1][0]
    assert not np.array_equal(frozen, plain)


def test_gradients_left_between_calls_accumulate_as_on_the_full_path(monkeypatch):
    """Without zero_grad each call adds to the .grad the last one left: a new gradient object each
    call (steady only where the state's pytree data repeats)."""
    _agree(_nothing, monkeypatch, zero=False)


def test_a_gradient_set_by_hand_between_calls_is_used(monkeypatch):
    def set_grad(i, backend, model, opt, batch):
        if i == 3:
            for p in model.parameters():
                p.raw().grad = tensor.from_numpy(np.ones(tuple(p.shape), np.float32), backend).raw()
    _agree(set_grad, monkeypatch, zero=False)


def test_eval_and_train_between_calls_switch_programs(monkeypatch):
    def mode(i, backend, model, opt, batch):
        if i == 2:
            model.eval()
        if i == 4:
            model.train()
    _agree(mode, monkeypatch, dropout=True)


def test_a_reseeded_generator_between_calls_draws_the_new_stream(monkeypatch):
    def reseed(i, backend, model, opt, batch):
        if i == 3:
            jtape.random.seed(123)
    hits = _agree(reseed, monkeypatch, dropout=True)
    assert hits == STEPS - 2


def test_a_batch_of_another_shape_or_kind_takes_the_full_path(monkeypatch):
    def other(i, backend, model, opt, batch):
        x, y = batch
        if i == 2:          # a short last batch: a new program
            return tensor.from_numpy(x.numpy()[:3], backend, requires_grad=False), \
                tensor.from_numpy(y.numpy()[:3], backend)
        if i == 3:          # wants a gradient now
            return tensor.from_numpy(x.numpy(), backend), y
        if i == 4:          # the targets as another dtype
            return x, tensor.from_numpy(y.numpy().astype(np.int64), backend)
        if i == 5:          # a pending eager result
            return x * 1.0, y
    _agree(other, monkeypatch)


def test_keyword_arguments_take_the_full_path(monkeypatch):
    assert _agree(_nothing, monkeypatch, call=lambda r, x, y: r(x, y=y)) == 0


def test_a_call_that_raises_leaves_no_steady_state(monkeypatch):
    """An out-of-range target raises from a call; the next call, with good targets, agrees with the
    full path."""
    calls = {"n": 0}

    def call(run, x, y):
        calls["n"] += 1
        if calls["n"] % STEPS == 4:
            bad_y = tensor.from_numpy(np.full(tuple(y.shape), 7, np.int32), y.backend)
            with pytest.raises(Exception, match="targets values"):
                run(x, bad_y)
        return run(x, y)
    _agree(_nothing, monkeypatch, call=call)


def test_a_step_without_state_of_tensors_and_raw_tensors_takes_the_steady_path(monkeypatch):
    """``jtape.jit(fn)`` with no state (gradients returned, as in the chain benchmark), called with
    Tensors and with RawTensors: the same results either way, steady after the first call."""
    backend = autodiff.new(JaxBackend("cpu"))
    rng = np.random.default_rng(1)
    values = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]

    def grads_of(a, b, c):
        loss = ((a * b + c).tanh() * a).sum()
        return loss, backend.tape().gradient(loss, [a, b, c])

    def product(a, b):
        return backend.mul(a, b)

    real = steady_module.Steady.match
    for on in (True, False):
        hits = []

        def match(self, args, kwargs, on=on):
            found = real(self, args, kwargs) if on else None
            hits.append(found is not None)
            return found
        monkeypatch.setattr(steady_module.Steady, "match", match)
        f, g = jtape.jit(grads_of), jtape.jit(product)
        out = []
        for k in range(4):
            leaves = [tensor.from_numpy(v * (k + 1), backend) for v in values]
            loss, grads = f(*leaves)
            out.append([loss.numpy()] + [t.numpy() for t in grads] + [g(leaves[0].raw(), leaves[1].raw()).data])
        if on:
            assert sum(hits) == 6, hits       # 3 of 4 calls of each function
            fast = out
        else:
            assert sum(hits) == 0
            for a, b in zip(fast, out):
                for x, y in zip(a, b):
                    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
