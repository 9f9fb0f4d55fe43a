"""CrossEntropyLoss (weight, ignore_index, label_smoothing, reduction, probability targets), NLLLoss,
BCEWithLogitsLoss, L1Loss, SmoothL1Loss, HuberLoss and MSELoss against references written row by
row in plain jnp: values and jax.grad gradients, float32 and float64; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import nn, tensor
from jtape.tensor.errors import ArgumentError, DTypeError, ShapeError

from .reference import compare, randn


def rows_of(x, t):
    """[N, C, d...] and [N, d...] (or [C] and []) as a list of (scores row, target) pairs."""
    if x.ndim == 1:
        return [(x, int(t))]
    c = x.shape[1]
    x2 = jnp.moveaxis(x, 1, -1).reshape(-1, c)
    return list(zip(x2, [int(v) for v in np.asarray(t).reshape(-1)]))


def class_loss_ref(weight=None, ignore=-100, eps=0.0, reduction="mean", log_probs=False):
    """torch's CrossEntropyLoss / NLLLoss, one row at a time."""
    def f(p, x, t):
        losses, wsum = [], 0.0
        for row, target in rows_of(x, t):
            c = row.shape[0]
            w = jnp.ones(c, row.dtype) if weight is None else jnp.asarray(weight, row.dtype)
            if target == ignore:
                losses.append(jnp.zeros((), row.dtype))
                continue
            logp = row if log_probs else row - jax.scipy.special.logsumexp(row)
            nll = -w[target] * logp[target]
            losses.append((1 - eps) * nll + eps / c * -jnp.sum(w * logp))
            wsum = wsum + w[target]
        out = jnp.stack(losses)
        if reduction == "none":
            return out.reshape(np.shape(t))
        return out.sum() if reduction == "sum" else out.sum() / wsum
    return f


OPTIONS = [{}, {"weight": [0.5, 2.0, 1.0, 3.0]}, {"ignore_index": 1}, {"label_smoothing": 0.2},
           {"weight": [0.5, 2.0, 1.0, 3.0], "ignore_index": 2, "label_smoothing": 0.1},
           {"reduction": "sum", "ignore_index": 0}, {"reduction": "none", "weight": [1.0, 0.0, 2.0, 1.0]},
           {"reduction": "none", "label_smoothing": 0.3, "ignore_index": 3}]
SHAPES = [((6, 4), (6,)), ((2, 4, 3), (2, 3)), ((2, 4, 2, 2), (2, 2, 2)), ((4,), ())]


def _ref_kwargs(opts):
    return {"weight": opts.get("weight"), "ignore": opts.get("ignore_index", -100), "eps": opts.get("label_smoothing", 0.0),
                "reduction": opts.get("reduction", "mean")}


def targets_for(shape, seed=1, ignore=-100):
    t = np.random.default_rng(seed).integers(0, 4, shape).astype(np.int32)
    if t.ndim == 0:   # the one target is kept (all ignored is 0 / 0, checked on its own below)
        return np.asarray(3 if ignore != 3 else 0, np.int32)
    if t.size > 1:   # every class once, so that ignore_index hides something and something is left
        t.flat[:4] = np.arange(4)[:min(4, t.size)]
    return t


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_cross_entropy_float64(backend, opts, shapes):
    x_shape, t_shape = shapes
    loss = nn.CrossEntropyLoss(**opts)
    compare(loss, class_loss_ref(**_ref_kwargs(opts)), [randn(*x_shape) * 2, targets_for(t_shape, ignore=opts.get("ignore_index"))], backend, "float64")


@pytest.mark.parametrize("opts", OPTIONS[:2] + OPTIONS[4:5])
def test_cross_entropy_float32(backend, opts):
    compare(nn.CrossEntropyLoss(**opts), class_loss_ref(**_ref_kwargs(opts)), [randn(5, 4), targets_for((5,))],
            backend, "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.25, "weight": [1.0, 2.0, 0.5]}, {"reduction": "none"}])
def test_cross_entropy_probability_targets(backend, dtype, opts):
    eps, w = opts.get("label_smoothing", 0.0), opts.get("weight")

    def ref(p, x, q):
        c = x.shape[1]
        q = q * (1 - eps) + eps / c
        ww = jnp.ones(c, x.dtype) if w is None else jnp.asarray(w, x.dtype)
        per_row = -jnp.sum(jax.nn.log_softmax(x, axis=1) * q * ww.reshape(c, 1), axis=1)
        return per_row if opts.get("reduction") == "none" else per_row.mean()
    probs = jax.nn.softmax(jnp.asarray(randn(4, 3, 2, seed=2)), axis=1)
    compare(nn.CrossEntropyLoss(**opts), ref, [randn(4, 3, 2), np.asarray(probs)], backend, dtype)


def test_cross_entropy_all_ignored_is_nan_as_torch(backend):
    loss = nn.CrossEntropyLoss(ignore_index=1)(tensor.from_numpy(randn(2, 3), backend), np.array([1, 1]))
    assert np.isnan(loss.item())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opts", OPTIONS[:3] + OPTIONS[5:7], ids=str)
def test_nll_loss(backend, dtype, opts):
    opts = {k: v for k, v in opts.items() if k != "label_smoothing"}
    logp = np.asarray(jax.nn.log_softmax(jnp.asarray(randn(3, 4, 2)), axis=1))
    compare(nn.NLLLoss(**opts), class_loss_ref(**_ref_kwargs(opts), log_probs=True), [logp, targets_for((3, 2))],
            backend, dtype)


def test_class_loss_errors(backend):
    x = tensor.from_numpy(randn(3, 4), backend, "float32")
    with pytest.raises(ShapeError, match=r"got input shape \(3, 4\) and target shape \(4,\); expected input "
                                         r"\[N, C, d1, \.\.\.\]"):
        nn.CrossEntropyLoss()(x, np.array([0, 1, 2, 3]))
    with pytest.raises(DTypeError, match="got target of dtype float32; expected integer class indices"):
        nn.NLLLoss()(x, tensor.ones((3,), backend))
    with pytest.raises(ShapeError, match=r"probability target shape \(3, 2\); expected the same shape"):
        nn.CrossEntropyLoss()(x, tensor.ones((3, 2), backend))
    with pytest.raises(ShapeError, match=r"got weight of shape \(3,\) for 4 classes"):
        nn.CrossEntropyLoss(weight=[1.0, 1.0, 1.0])(x, np.array([0, 1, 2]))
    with pytest.raises(DTypeError, match="got input of dtype int32; expected a float tensor"):
        nn.CrossEntropyLoss()(tensor.from_numpy(np.ones((3, 4), np.int32), backend), np.array([0, 1, 2]))
    with pytest.raises(ArgumentError, match="reduction='avg'; expected 'mean', 'sum' or 'none'"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ArgumentError, match="label_smoothing=1.5"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ArgumentError, match="ignore_index=None"):
        nn.NLLLoss(ignore_index=None)
    with pytest.raises(ShapeError, match=r"got weight of shape \(2, 2\); expected \[C\]"):
        nn.NLLLoss(weight=np.ones((2, 2)))
    with pytest.raises(Exception, match="7"):   # a class index out of range is named
        nn.CrossEntropyLoss()(x, np.array([0, 7, 1])).numpy()


def bce_ref(weight=None, pos_weight=None, reduction="mean"):
    def f(p, x, y):
        pw = 1.0 if pos_weight is None else jnp.asarray(pos_weight, x.dtype)
        losses = -(pw * y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
        if weight is not None:
            losses = losses * jnp.asarray(weight, x.dtype)
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: v}[reduction](losses)
    return f


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opts", [{}, {"pos_weight": [0.5, 3.0, 1.0]}, {"weight": [[2.0, 0.0, 1.0]]},
                                  {"weight": [1.0, 2.0, 3.0], "pos_weight": [2.0, 1.0, 0.5], "reduction": "sum"},
                                  {"reduction": "none"}], ids=str)
def test_bce_with_logits(backend, dtype, opts):
    x = randn(4, 3) * 4
    x[0, 0], x[1, 1] = 60.0, -60.0   # far out: no overflow, no log 0
    y = np.random.default_rng(2).random((4, 3))
    y[2] = (y[2] > 0.5)
    compare(nn.BCEWithLogitsLoss(**opts), bce_ref(**opts), [x, y], backend, dtype)


def regression_ref(kind, reduction="mean", beta=1.0):
    def f(p, x, y):
        d = x - y
        a = jnp.abs(d)
        losses = {"l1": lambda: a, "mse": lambda: d * d,
                  "smooth_l1": lambda: a if beta == 0 else jnp.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta),
                  "huber": lambda: jnp.where(a < beta, 0.5 * d * d, beta * (a - 0.5 * beta))}[kind]()
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: v}[reduction](losses)
    return f


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind,make", [("l1", lambda r: nn.L1Loss(r)), ("mse", lambda r: nn.MSELoss(r)),
                                       ("smooth_l1", lambda r: nn.SmoothL1Loss(r)),
                                       ("huber", lambda r: nn.HuberLoss(r))], ids=lambda v: v if isinstance(v, str)
                         else "")
def test_regression_losses(backend, dtype, reduction, kind, make):
    compare(make(reduction), regression_ref(kind, reduction), [randn(3, 5) * 2, randn(3, 5, seed=1)], backend, dtype)


@pytest.mark.parametrize("kind,loss", [("smooth_l1", nn.SmoothL1Loss(beta=0.5)), ("smooth_l1", nn.SmoothL1Loss(beta=0.0)),
                                       ("huber", nn.HuberLoss(delta=2.5))], ids=["beta=0.5", "beta=0", "delta=2.5"])
def test_regression_loss_parameters(backend, kind, loss):
    beta = loss.beta if kind == "smooth_l1" else loss.delta
    compare(loss, regression_ref(kind, beta=beta), [randn(4, 3) * 3, randn(4, 3, seed=1)], backend, "float64")


def test_regression_loss_errors(backend):
    x = tensor.ones((2, 3), backend)
    for loss in (nn.L1Loss(), nn.SmoothL1Loss(), nn.HuberLoss(), nn.BCEWithLogitsLoss(), nn.MSELoss()):
        name = type(loss).__name__
        with pytest.raises(ShapeError, match=rf"{name}: got pred shape \(2, 3\) and target shape \(3,\)"):
            loss(x, np.ones(3))
        with pytest.raises(DTypeError, match=f"{name}: got input of int32; expected a float Tensor"):
            loss(tensor.from_numpy(np.ones((2, 3), np.int32), backend), np.ones((2, 3)))
    with pytest.raises(ArgumentError, match="beta=-1"):
        nn.SmoothL1Loss(beta=-1)
    with pytest.raises(ArgumentError, match="delta=0"):
        nn.HuberLoss(delta=0)
    with pytest.raises(ShapeError, match=r"got pos_weight of shape \(4,\) for input shape \(2, 3\)"):
        nn.BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 3.0, 4.0])(x, np.ones((2, 3)))
    with pytest.raises(ArgumentError, match="reduction='max'"):
        nn.L1Loss("max")
