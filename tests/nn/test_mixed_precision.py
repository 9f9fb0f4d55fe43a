"""optim.MixedPrecision: bfloat16 / float16 compute with float32 master weights and optimizer moments,
against float32 training of the same MLP on the digits; dynamic loss scaling; eager and jtape.jit."""

import copy
import pickle

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

import jtape
from jtape import nn, optim, tensor
from jtape.tensor.errors import ArgumentError, DTypeError

STEPS, BATCH, LR = 25, 64, 1e-2
# Tolerance on each step's loss against float32 training: 4·u·L0, with u the unit roundoff of the
# compute dtype (bfloat16 2^-9, float16 2^-11) and L0 = ln 10 ≈ 2.3 the initial loss of 10 classes.
# A loss computed from logits that are each off by a relative u is off by about u·L (rounding errors
# of the 64-term dot products partly cancel); 4× leaves room for the trajectories to drift apart over
# the steps. Measured: at most 0.001 (bfloat16) and 0.0002 (float16) over 60 steps.
TOLERANCE = {"bfloat16": 4 * 2.0 ** -9 * np.log(10), "float16": 4 * 2.0 ** -11 * np.log(10)}


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(x), BATCH, replace=False) for _ in range(STEPS)]
    return (x / 16.0).astype(np.float32), y.astype(np.int32), batches


def _mlp(backend):
    return nn.Sequential(nn.Linear(64, 32, backend, seed=0), nn.ReLU(), nn.Linear(32, 10, backend, seed=1))


def _train(digits, compute_dtype, compiled):
    x, y, batches = digits
    backend = jtape.default_backend()
    model, loss_fn = _mlp(backend), nn.CrossEntropyLoss()
    if compute_dtype == "float32":
        opt = optim.Adam(model.parameters(), lr=LR)
    else:
        opt = optim.MixedPrecision(model, lambda ps: optim.Adam(ps, lr=LR), compute_dtype=compute_dtype)

    def step(xb, yb):
        loss = loss_fn(model(xb.to(compute_dtype)).to("float32"), yb)
        (loss if compute_dtype == "float32" else opt.scale_loss(loss)).backward()
        opt.step()
        opt.zero_grad()
        return loss

    if compiled:
        step = jtape.jit(step, state=[model, opt])
    losses = [step(tensor.asarray(x[i]), tensor.asarray(y[i])).item() for i in batches]
    return np.array(losses), model, opt


@pytest.fixture(scope="module")
def float32_losses(digits):
    return _train(digits, "float32", compiled=False)[0]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float16"])
def test_mixed_precision_tracks_float32_training(digits, float32_losses, compute_dtype, compiled):
    losses, model, opt = _train(digits, compute_dtype, compiled)
    gap = np.abs(losses - float32_losses)
    assert gap.max() <= TOLERANCE[compute_dtype], (gap.max(), losses, float32_losses)
    assert gap.max() > 0                                     # it did compute in the lower precision
    assert losses[-1] < 0.5 * losses[0]                      # and it trains
    assert all(p.dtype == compute_dtype for p in model.parameters())
    assert all(m.dtype is tensor.float32 for m in opt.masters)
    moments = [a for a in jax.tree_util.tree_leaves(opt.optimizer.state) if a.ndim > 0]
    assert len(moments) == 2 * len(opt.masters) and all(a.dtype == np.float32 for a in moments)
    for p in model.parameters():                             # the model holds the masters, rounded
        np.testing.assert_array_equal(p.numpy(), opt.master_of(p).numpy().astype(p.dtype.numpy))
    assert opt.steps == STEPS
    assert opt.loss_scale == (2.0 ** 15 if compute_dtype == "float16" else 1.0)


def _tiny(compute_dtype, lr=1.0, **options):
    backend = jtape.default_backend()
    model = nn.Linear(3, 1, backend, seed=0, bias=False)
    opt = optim.MixedPrecision(model, lambda ps: optim.SGD(ps, lr=lr), compute_dtype=compute_dtype, **options)
    return model, opt


def test_loss_scaling_keeps_float16_gradients_that_would_underflow():
    """d loss / d w = 1e-4 · x = 1e-8: below float16's smallest subnormal (6e-8), so unscaled it is 0."""
    x = np.full((1, 3), 1e-4, np.float16)
    for scaling, expect_moved in ((None, False), ("dynamic", True)):
        model, opt = _tiny("float16", lr=1e4, loss_scale=scaling)
        before = opt.masters[0].numpy().copy()
        loss = (model(tensor.asarray(x)).to("float32") * 1e-4).sum()
        opt.scale_loss(loss).backward()
        opt.step()
        moved = opt.masters[0].numpy() - before
        if expect_moved:
            np.testing.assert_allclose(moved, -1e-4, rtol=1e-2)   # lr 1e4 · the true gradient 1e-8
        else:
            np.testing.assert_array_equal(moved, 0.0)             # flushed to zero in float16


def test_a_non_finite_step_is_skipped_and_the_scale_adapts():
    model, opt = _tiny("float16", growth_interval=2)
    w = model.weight
    state = jax.tree_util.tree_map(np.asarray, opt.optimizer.state)
    before = opt.masters[0].numpy().copy()
    w.grad = tensor.asarray(np.array([[np.inf, 1.0, 1.0]], np.float16), w.backend)
    opt.step()
    np.testing.assert_array_equal(opt.masters[0].numpy(), before)            # skipped
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(opt.optimizer.state)):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert opt.loss_scale == 2.0 ** 14                                        # halved
    for expected in (2.0 ** 14, 2.0 ** 15):                                   # two good steps: doubled
        w.grad = tensor.asarray(np.ones((1, 3), np.float16), w.backend)
        opt.step()
        assert opt.loss_scale == expected
    np.testing.assert_allclose(opt.masters[0].numpy(), before - 2 * 2.0 ** -14, rtol=1e-6)   # lr · 1/S, twice


def test_the_loss_scale_is_carried_through_jtape_jit():
    model, opt = _tiny("float16", growth_interval=3)
    x = np.full((1, 3), 0.5, np.float16)      # d loss / d w = S · x: below float16's 65504 up to S = 2**16

    @jtape.jit(state=[model, opt])
    def step(xb):
        loss = model(xb).to("float32").sum()
        opt.scale_loss(loss).backward()
        opt.step()
        opt.zero_grad()
        return loss

    for _ in range(3):
        step(tensor.asarray(x))
    assert opt.loss_scale == 2.0 ** 16 and opt.steps == 3
    step(tensor.asarray(np.full((1, 3), np.inf, np.float16)))               # skipped inside the program
    assert opt.loss_scale == 2.0 ** 15 and np.isfinite(opt.masters[0].numpy()).all()


def test_bfloat16_does_not_scale_by_default():
    model, opt = _tiny("bfloat16")
    loss = model(tensor.asarray(np.ones((1, 3)), dtype="bfloat16")).sum()
    assert opt.scale_loss(loss) is loss and opt.loss_scale == 1.0


def test_mixed_precision_pickles_and_deepcopies_with_its_model():
    model, opt = _tiny("float16", growth_interval=1)
    x = tensor.asarray(np.ones((2, 3), np.float16))

    def train(m, o):
        loss = m(x).to("float32").sum()
        o.scale_loss(loss).backward()
        o.step()
        o.zero_grad()
        return float(o.masters[0].numpy().sum()), o.loss_scale

    train(model, opt)
    for model2, opt2 in (pickle.loads(pickle.dumps((model, opt))), copy.deepcopy((model, opt))):
        assert opt2.compute_params[0] is model2.weight and opt2.optimizer.params[0] is opt2.masters[0]
        assert train(model2, opt2) == train(*copy.deepcopy((model, opt)))


def test_mixed_precision_errors():
    backend = jtape.default_backend()
    with pytest.raises(DTypeError, match="got compute_dtype float32; expected bfloat16 or float16"):
        optim.MixedPrecision(_mlp(backend), lambda ps: optim.SGD(ps, lr=0.1), compute_dtype="float32")
    other = _mlp(backend)
    with pytest.raises(ArgumentError, match="expected an Optimizer on exactly the parameters it was given"):
        optim.MixedPrecision(_mlp(backend), lambda ps: optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(ArgumentError, match="got loss_scale='static'; expected"):
        optim.MixedPrecision(_mlp(backend), lambda ps: optim.SGD(ps, lr=0.1), loss_scale="static")
    with pytest.raises(ArgumentError, match="got 0 parameters"):
        optim.MixedPrecision([], lambda ps: optim.SGD(ps, lr=0.1))
