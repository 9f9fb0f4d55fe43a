"""Each layer and loss of ``jtape.nn`` against the matching ``torch.nn`` one given the same weights:
outputs, input gradients and parameter gradients for a random output gradient, in float64.

Marked ``torch``: the default run deselects them (``-m "not torch"`` in pyproject's addopts); CI runs
``pytest -m torch tests/torch_parity`` with the ``bench`` extra's torch installed. torch is imported
inside the tests, so collecting this file never needs it.
"""

import numpy as np
import pytest

from jtape import autodiff, nn, tensor
from jtape.backends import JaxBackend

pytestmark = pytest.mark.torch
TOL = 1e-10


@pytest.fixture(scope="module")
def torch():
    import torch
    torch.set_default_dtype(torch.float64)
    return torch


@pytest.fixture
def backend():
    return autodiff.new(JaxBackend("cpu"))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def copy_state(jmod, tmod, torch):
    """jtape's parameters and buffers into the torch module, by name (strict: the names must agree)."""
    state = {n: torch.tensor(np.asarray(t.numpy())) for n, t in [*jmod.named_parameters(), *jmod.named_buffers()]}
    tmod.load_state_dict(state, strict=True)


def check(torch, backend, jmod, tmod, inputs, *, jcall=None, tcall=None, seed=0, grads_of=None):
    """Run both on the same inputs; compare every output, then the gradients of Σ out·ct for the float
    inputs (or those in ``grads_of``) and every parameter."""
    if list(jmod.named_parameters()) or list(jmod.named_buffers()):   # (a loss's weight stays torch's own)
        copy_state(jmod, tmod, torch)
    grads_of = [i for i, a in enumerate(inputs) if np.asarray(a).dtype.kind == "f"] if grads_of is None else grads_of
    jx = [tensor.from_numpy(a, backend, requires_grad=i in grads_of) for i, a in enumerate(inputs)]
    tx = [torch.tensor(a, requires_grad=i in grads_of) for i, a in enumerate(inputs)]
    jout = (jcall or (lambda m, *a: m(*a)))(jmod, *jx)
    tout = (tcall or (lambda m, *a: m(*a)))(tmod, *tx)
    jout = [o for o in (jout if isinstance(jout, tuple) else (jout,)) if o is not None]
    tout = [o for o in (tout if isinstance(tout, tuple) else (tout,)) if o is not None]
    assert len(jout) == len(tout)
    rng = np.random.default_rng(seed)
    cts = [rng.standard_normal(tuple(o.shape)) for o in tout]
    for k, (j, t) in enumerate(zip(jout, tout)):
        np.testing.assert_allclose(j.numpy(), t.detach().numpy(), rtol=TOL, atol=TOL, err_msg=f"output {k}")
    sum(((o * tensor.from_numpy(c, backend, requires_grad=False)).sum() for o, c in zip(jout, cts))).backward()
    sum((o * torch.tensor(c)).sum() for o, c in zip(tout, cts)).backward()
    for i in grads_of:
        np.testing.assert_allclose(jx[i].grad.numpy(), tx[i].grad.numpy(), rtol=TOL, atol=TOL, err_msg=f"input {i}")
    if isinstance(tmod, torch.nn.Module):
        jparams = dict(jmod.named_parameters())
        for name, p in tmod.named_parameters():
            np.testing.assert_allclose(jparams[name].grad.numpy(), p.grad.numpy(), rtol=TOL, atol=TOL, err_msg=name)


def randomise(jmod, backend, seed=7):
    """Non-trivial values for every parameter (ones and zeros hide mistakes)."""
    for i, (_, p) in enumerate(jmod.named_parameters()):
        p.assign(backend.from_numpy(0.5 * randn(*p.shape, seed=seed + i) + (1.0 if p.ndim == 1 else 0.0), "float64"))
    return jmod


def test_layer_norm(torch, backend):
    for shape, ns in [((4, 6), 6), ((2, 3, 4), (3, 4))]:
        j = randomise(nn.LayerNorm(ns, eps=1e-4, backend=backend, dtype="float64"), backend)
        check(torch, backend, j, torch.nn.LayerNorm(ns, eps=1e-4), [randn(*shape) * 2 + 1])


@pytest.mark.parametrize("dims,shape", [(1, (6, 3)), (1, (4, 3, 5)), (2, (2, 3, 4, 5))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_train_then_eval(torch, backend, dims, shape, momentum):
    j_cls, t_cls = (nn.BatchNorm1d, torch.nn.BatchNorm1d) if dims == 1 else (nn.BatchNorm2d, torch.nn.BatchNorm2d)
    j = randomise(j_cls(3, momentum=momentum, backend=backend, dtype="float64"), backend)
    t = t_cls(3, momentum=momentum)
    copy_state(j, t, torch)
    for step in range(3):
        check(torch, backend, j, t, [randn(*shape, seed=step) * (step + 1) + step], seed=step)
        for p in [*j.parameters(), *t.parameters()]:
            p.grad = None if isinstance(p, torch.Tensor) else p.zero_grad()
        for name in ("running_mean", "running_var"):
            np.testing.assert_allclose(getattr(j, name).numpy(), getattr(t, name).numpy(), rtol=TOL, err_msg=name)
        assert int(j.num_batches_tracked.numpy()) == int(t.num_batches_tracked) == step + 1
    j.eval()
    t.eval()
    check(torch, backend, j, t, [randn(*shape, seed=9)])


@pytest.mark.parametrize("pad", [None, 1])
def test_embedding(torch, backend, pad):
    j = nn.Embedding(5, 3, padding_idx=pad, backend=backend, dtype="float64", seed=0)
    j.weight.assign(backend.from_numpy(randn(5, 3), "float64"))
    ids = np.array([[1, 2, 1], [4, 0, 1]], np.int64)
    check(torch, backend, j, torch.nn.Embedding(5, 3, padding_idx=pad), [ids])


MASK_CASES = ["none", "causal", "padding", "causal+padding", "float", "3d-float", "seq-first", "kdim", "unbatched"]


@pytest.mark.parametrize("case", MASK_CASES)
def test_multihead_attention(torch, backend, case):
    e, h, n, length = 8, 2, 2, 5
    kw = {"kdim": 5, "vdim": 3} if case == "kdim" else {}
    batch_first = case != "seq-first"
    j = randomise(nn.MultiheadAttention(e, h, batch_first=batch_first, backend=backend, dtype="float64", **kw),
                  backend)
    t = torch.nn.MultiheadAttention(e, h, batch_first=batch_first, **kw)
    shape_q = (length, e) if case == "unbatched" else (n, length, e) if batch_first else (length, n, e)
    kv = (randn(*shape_q[:-1], kw.get("kdim", e), seed=1), randn(*shape_q[:-1], kw.get("vdim", e), seed=2))
    jkw, tkw = {}, {}
    pad = np.array([[False, False, True, False, True], [False] * 5])
    causal = np.triu(np.ones((length, length), bool), 1)
    if "padding" in case:
        jkw["key_padding_mask"] = tensor.from_numpy(pad, backend)
        tkw["key_padding_mask"] = torch.tensor(pad)
    if "causal" in case:   # torch needs the mask with its is_causal hint; jtape builds it
        jkw["is_causal"], tkw["is_causal"], tkw["attn_mask"] = True, True, torch.tensor(causal)
    if case in ("float", "3d-float"):
        m = randn(length, length, seed=3) if case == "float" else randn(n * h, length, length, seed=3)
        jkw["attn_mask"], tkw["attn_mask"] = tensor.from_numpy(m, backend, requires_grad=False), torch.tensor(m)
    for average in (True, False):
        check(torch, backend, j, t, [randn(*shape_q), *kv],
              jcall=lambda m, q, k, v, a=average: m(q, k, v, average_attn_weights=a, **jkw),
              tcall=lambda m, q, k, v, a=average: m(q, k, v, average_attn_weights=a, **tkw))
        for p in [*j.parameters(), *t.parameters()]:
            p.grad = None if isinstance(p, torch.Tensor) else p.zero_grad()


@pytest.mark.parametrize("name", ["GELU", "GELU-tanh", "LeakyReLU", "ELU", "Softplus", "Softplus-beta", "Identity",
                                  "Flatten"])
def test_activations(torch, backend, name):
    j, t = {"GELU": (nn.GELU(), torch.nn.GELU()),
            "GELU-tanh": (nn.GELU("tanh"), torch.nn.GELU("tanh")),
            "LeakyReLU": (nn.LeakyReLU(0.3), torch.nn.LeakyReLU(0.3)),
            "ELU": (nn.ELU(0.6), torch.nn.ELU(0.6)),
            "Softplus": (nn.Softplus(), torch.nn.Softplus()),
            "Softplus-beta": (nn.Softplus(2.0, 5.0), torch.nn.Softplus(2.0, 5.0)),
            "Identity": (nn.Identity(), torch.nn.Identity()),
            "Flatten": (nn.Flatten(1, 2), torch.nn.Flatten(1, 2))}[name]
    x = randn(2, 3, 4) * 5
    x[0, 0, :3] = [25.0, -25.0, 2.5]   # past Softplus's threshold (exactly x there, in both)
    check(torch, backend, j, t, [x])


CE_OPTIONS = [{}, {"weight": [0.5, 2.0, 1.0, 3.0]}, {"ignore_index": 1}, {"label_smoothing": 0.2},
              {"weight": [0.5, 2.0, 1.0, 3.0], "ignore_index": 2, "label_smoothing": 0.1},
              {"reduction": "sum", "ignore_index": 0, "weight": [1.0, 2.0, 1.0, 1.0]},
              {"reduction": "none", "label_smoothing": 0.3, "ignore_index": 3, "weight": [1.0, 0.5, 2.0, 1.0]}]


@pytest.mark.parametrize("opts", CE_OPTIONS, ids=str)
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3), (4,)], ids=str)
def test_cross_entropy(torch, backend, opts, shape):
    t_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = np.random.default_rng(1).integers(0, 4, t_shape).astype(np.int64)
    if target.ndim:
        target.flat[:4] = np.arange(4)
    elif int(target) == opts.get("ignore_index"):
        target = np.asarray((int(target) + 1) % 4)
    topts = {**opts, "weight": torch.tensor(opts["weight"])} if "weight" in opts else opts
    check(torch, backend, nn.CrossEntropyLoss(**opts), torch.nn.CrossEntropyLoss(**topts), [randn(*shape) * 2, target])
    nll_opts = {k: v for k, v in opts.items() if k != "label_smoothing"}
    nll_topts = {k: v for k, v in topts.items() if k != "label_smoothing"}
    logp = np.log(np.exp(randn(*shape)) / np.exp(randn(*shape)).sum(axis=0 if len(shape) == 1 else 1, keepdims=True))
    check(torch, backend, nn.NLLLoss(**nll_opts), torch.nn.NLLLoss(**nll_topts), [logp, target])


@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.25, "weight": [1.0, 2.0, 0.5]}, {"reduction": "sum"}],
                         ids=str)
def test_cross_entropy_probability_targets(torch, backend, opts):
    topts = {**opts, "weight": torch.tensor(opts["weight"])} if "weight" in opts else opts
    p = np.random.default_rng(2).random((4, 3, 2))
    p /= p.sum(1, keepdims=True)
    check(torch, backend, nn.CrossEntropyLoss(**opts), torch.nn.CrossEntropyLoss(**topts), [randn(4, 3, 2), p])


@pytest.mark.parametrize("opts", [{}, {"pos_weight": [0.5, 3.0, 1.0]}, {"weight": [[2.0, 0.0, 1.0]]},
                                  {"weight": [1.0, 2.0, 3.0], "pos_weight": [2.0, 1.0, 0.5], "reduction": "sum"},
                                  {"reduction": "none"}], ids=str)
def test_bce_with_logits(torch, backend, opts):
    x = randn(4, 3) * 4
    x[0, 0], x[1, 1] = 60.0, -60.0
    y = np.random.default_rng(2).random((4, 3))
    topts = {k: torch.tensor(v) if k != "reduction" else v for k, v in opts.items()}
    check(torch, backend, nn.BCEWithLogitsLoss(**opts), torch.nn.BCEWithLogitsLoss(**topts), [x, y])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["L1Loss", "MSELoss", "SmoothL1Loss", "SmoothL1Loss-beta", "HuberLoss",
                                  "HuberLoss-delta"])
def test_regression_losses(torch, backend, reduction, name):
    base, _, extra = name.partition("-")
    kw = {"beta": 0.4} if extra == "beta" else {"delta": 2.5} if extra == "delta" else {}
    j, t = getattr(nn, base)(reduction=reduction, **kw), getattr(torch.nn, base)(reduction=reduction, **kw)
    check(torch, backend, j, t, [randn(3, 5) * 2, randn(3, 5, seed=1)])


def test_containers_name_parameters_as_torch(torch, backend):
    class J(nn.Module):
        def __init__(self):
            self.blocks = nn.ModuleList([nn.LayerNorm(3, backend=backend, dtype="float64") for _ in range(2)])
            self.heads = nn.ModuleDict({"q": nn.LayerNorm(3, backend=backend, dtype="float64")})
            self.extra = nn.ParameterList([tensor.ones((2,), backend, "float64")])

    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.LayerNorm(3) for _ in range(2)])
            self.heads = torch.nn.ModuleDict({"q": torch.nn.LayerNorm(3)})
            self.extra = torch.nn.ParameterList([torch.ones(2)])

    assert sorted(n for n, _ in J().named_parameters()) == sorted(n for n, _ in T().named_parameters())
