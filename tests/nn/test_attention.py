"""MultiheadAttention and Embedding against plain-jnp references: values and jax.grad gradients for
float32 and float64, with causal, padding, combined and float masks; layouts; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import nn, tensor
from jtape.tensor.errors import ArgumentError, DTypeError, ShapeError

from .reference import compare, randn

DTYPES = ["float32", "float64"]


def attention_ref(h, attn_mask=None, key_padding_mask=None, causal=False, average=True, packed=True):
    """torch's multi-head attention written out in jnp (batch first); masks: bool True = hidden."""
    def f(p, q_in, k_in, v_in):
        e = q_in.shape[-1]
        if packed:
            wq, wk, wv = p["in_proj_weight"][:e], p["in_proj_weight"][e:2 * e], p["in_proj_weight"][2 * e:]
        else:
            wq, wk, wv = p["q_proj_weight"], p["k_proj_weight"], p["v_proj_weight"]
        b = p.get("in_proj_bias", jnp.zeros(3 * e, q_in.dtype))
        q, k, v = q_in @ wq.T + b[:e], k_in @ wk.T + b[e:2 * e], v_in @ wv.T + b[2 * e:]
        n, length, s, d = q.shape[0], q.shape[1], k.shape[1], e // h
        split = lambda x, t: x.reshape(n, t, h, d).transpose(0, 2, 1, 3)
        scores = jnp.einsum("nhld,nhsd->nhls", split(q, length), split(k, s)) / np.sqrt(d)
        mask = jnp.zeros((n, h, length, s), q.dtype)
        if causal:
            mask = jnp.where(jnp.triu(jnp.ones((length, s), bool), 1), -jnp.inf, mask)
        if attn_mask is not None:
            m = attn_mask.reshape((1, 1, length, s) if attn_mask.ndim == 2 else (n, h, length, s))
            mask = mask + (jnp.where(m, -jnp.inf, 0.0) if m.dtype == bool else m)
        if key_padding_mask is not None:
            m = key_padding_mask.reshape(n, 1, 1, s)
            mask = mask + (jnp.where(m, -jnp.inf, 0.0) if m.dtype == bool else m)
        w = jax.nn.softmax(scores + mask, axis=-1)
        heads = jnp.einsum("nhls,nhsd->nhld", w, split(v, s)).transpose(0, 2, 1, 3).reshape(n, length, e)
        out = heads @ p["out_proj.weight"].T + p.get("out_proj.bias", 0.0)
        return out, (w.mean(1) if average else w)
    return f


def randomise(module, backend, dtype, seed=3):
    """Non-zero biases (zeros would hide a missing bias gradient)."""
    for i, (name, p) in enumerate(module.named_parameters()):
        if "bias" in name:
            p.assign(backend.from_numpy(0.3 * randn(*p.shape, seed=seed + i), dtype))
    return module


def mha(backend, dtype, e=8, h=2, **kw):
    return randomise(nn.MultiheadAttention(e, h, backend=backend, dtype=dtype, seed=0, **kw), backend, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,length,s,h", [(2, 5, 5, 2), (1, 3, 4, 4), (3, 1, 2, 1)])
def test_attention_cross(backend, dtype, n, length, s, h):
    layer = mha(backend, dtype, h=h)
    compare(layer, attention_ref(h), [randn(n, length, 8), randn(n, s, 8, seed=1), randn(n, s, 8, seed=2)],
            backend, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_self_attention_causal(backend, dtype):
    layer = mha(backend, dtype)
    x = randn(2, 5, 8)
    outs = compare(layer, lambda p, x: attention_ref(2, causal=True)(p, x, x, x), [x], backend, dtype,
                   call=lambda m, x: m(x, x, x, is_causal=True))
    w = outs[1].numpy()
    assert np.all(w[:, np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)   # no look ahead


PAD = np.array([[False, False, False, True, True], [False, False, False, False, False]])
FLOAT_MASK = np.random.default_rng(4).standard_normal((5, 5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["padding", "causal+padding", "float", "float-padding", "bool-2d", "3d", "unaveraged"])
def test_attention_masks(backend, dtype, case):
    layer = mha(backend, dtype)
    q, kv = randn(2, 5, 8), randn(2, 5, 8, seed=1)
    kw, ref_kw, consts = {}, {}, {}
    if "padding" in case:
        pad = PAD if case != "float-padding" else np.where(PAD, -2.0, 0.5)
        consts["key_padding_mask"], ref_kw["key_padding_mask"] = pad, jnp.asarray(pad)
    if case == "causal+padding":
        kw["is_causal"], ref_kw["causal"] = True, True
    if case == "float":
        consts["attn_mask"], ref_kw["attn_mask"] = FLOAT_MASK, jnp.asarray(FLOAT_MASK)
    if case == "bool-2d":
        m = np.random.default_rng(5).random((5, 5)) < 0.3
        np.fill_diagonal(m, False)
        consts["attn_mask"], ref_kw["attn_mask"] = m, jnp.asarray(m)
    if case == "3d":
        m = np.random.default_rng(6).standard_normal((4, 5, 5))   # [N·H, L, S]
        consts["attn_mask"], ref_kw["attn_mask"] = m, jnp.asarray(m)
    if case == "unaveraged":
        kw["average_attn_weights"], ref_kw["average"] = False, False
    masks = {k: tensor.from_numpy(v, backend, dtype if v.dtype.kind == "f" else None, requires_grad=False)
             for k, v in consts.items()}
    compare(layer, lambda p, a, b: attention_ref(2, **ref_kw)(p, a, b, b), [q, kv], backend, dtype,
            call=lambda m, a, b: m(a, b, b, **masks, **kw))


def test_attention_layouts_and_options(backend):
    dtype = "float64"
    layer = mha(backend, dtype, batch_first=False)
    q, k, v = randn(4, 2, 8), randn(3, 2, 8, seed=1), randn(3, 2, 8, seed=2)   # [L, N, E]
    ref = attention_ref(2)

    def seq_first(p, a, b, c):
        out, w = ref(p, a.transpose(1, 0, 2), b.transpose(1, 0, 2), c.transpose(1, 0, 2))
        return out.transpose(1, 0, 2), w
    compare(layer, seq_first, [q, k, v], backend, dtype)

    unbatched = mha(backend, dtype)
    compare(unbatched, lambda p, a, b: tuple(o[0] for o in ref(p, a[None], b[None], b[None])),
            [randn(4, 8), randn(3, 8, seed=1)], backend, dtype, call=lambda m, a, b: m(a, b, b))

    kv_dims = mha(backend, dtype, kdim=5, vdim=3)
    assert [n for n, _ in kv_dims.named_parameters()] == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                                          "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    compare(kv_dims, attention_ref(2, packed=False), [randn(2, 4, 8), randn(2, 3, 5), randn(2, 3, 3)], backend, dtype)

    no_bias = mha(backend, dtype, bias=False)
    assert [n for n, _ in no_bias.named_parameters()] == ["in_proj_weight", "out_proj.weight"]
    out, w = no_bias(*[tensor.from_numpy(randn(1, 2, 8), backend)] * 3, need_weights=False)
    assert w is None and tuple(out.shape) == (1, 2, 8)


def test_attention_dropout_only_in_training(backend):
    layer = nn.MultiheadAttention(8, 2, dropout=0.5, backend=backend, dtype="float64", seed=0)
    x = tensor.from_numpy(randn(2, 6, 8), backend)
    layer.eval()
    _, w = layer(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-12)
    layer.train()
    _, w = layer(x, x, x, average_attn_weights=False)
    assert np.any(w.numpy() == 0.0)   # some weights dropped (probability 1 - 2**-144 at p = 0.5)


def test_attention_errors(backend):
    layer = nn.MultiheadAttention(8, 2, backend=backend)
    x = tensor.ones((2, 5, 8), backend)
    with pytest.raises(ArgumentError, match="embed_dim=8 and num_heads=3; expected embed_dim divisible"):
        nn.MultiheadAttention(8, 3, backend=backend)
    with pytest.raises(ShapeError, match=r"got query shape \(2, 5, 6\); expected rank 3 \(\[N, L, E\] for query\) "
                                         r"with last dim 8"):
        layer(tensor.ones((2, 5, 6), backend), x, x)
    with pytest.raises(ShapeError, match="expected one batch size N"):
        layer(x, tensor.ones((3, 5, 8), backend), tensor.ones((3, 5, 8), backend))
    with pytest.raises(ShapeError, match=r"got attn_mask shape \(4, 4\); expected \(5, 5\) or \(4, 5, 5\)"):
        layer(x, x, x, attn_mask=tensor.zeros((4, 4), backend))
    with pytest.raises(ShapeError, match=r"got key_padding_mask shape \(5,\); expected \(2, 5\)"):
        layer(x, x, x, key_padding_mask=tensor.from_numpy(np.zeros(5, bool), backend))
    with pytest.raises(DTypeError, match="got attn_mask of dtype int32; expected bool"):
        layer(x, x, x, attn_mask=tensor.from_numpy(np.zeros((5, 5), np.int32), backend))
    with pytest.raises(DTypeError, match="got query of dtype int32"):
        layer(tensor.from_numpy(np.zeros((2, 5, 8), np.int32), backend), x, x)
    with pytest.raises(ArgumentError, match="got a ndarray as attn_mask; expected a Tensor"):
        layer(x, x, x, attn_mask=np.zeros((5, 5), bool))


def embedding_ref(pad=None):
    def f(p, ids):
        w = p["weight"]
        out = w[ids]
        if pad is None:
            return out
        return jnp.where((ids == pad)[..., None], jax.lax.stop_gradient(w)[ids], out)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ids_shape", [(5,), (2, 3), (2, 2, 2), ()])
@pytest.mark.parametrize("pad", [None, 2])
def test_embedding(backend, dtype, ids_shape, pad):
    layer = nn.Embedding(6, 4, padding_idx=pad, backend=backend, dtype=dtype, seed=0)
    assert tuple(layer.weight.shape) == (6, 4)
    if pad is not None:
        assert np.all(layer.weight.numpy()[pad] == 0)
        layer.weight.assign(backend.from_numpy(randn(6, 4), dtype))   # a non-zero padding row is read as it is
    ids = np.random.default_rng(1).integers(0, 6, ids_shape).astype(np.int32)
    if pad is not None and ids.size:
        ids.flat[0] = pad
    outs = compare(layer, embedding_ref(pad), [ids], backend, dtype)
    assert tuple(outs[0].shape) == ids_shape + (4,)
    if pad is not None:
        assert np.all(layer.weight.grad.numpy()[pad] == 0)


def test_embedding_errors(backend):
    layer = nn.Embedding(4, 3, backend=backend)
    with pytest.raises(DTypeError, match="got ids of dtype float32; expected integer ids"):
        layer(tensor.ones((2,), backend))
    with pytest.raises(ArgumentError, match="padding_idx=4"):
        nn.Embedding(4, 3, padding_idx=4, backend=backend)
    assert nn.Embedding(4, 3, padding_idx=-1, backend=backend).padding_idx == 3
    with pytest.raises(ArgumentError, match="embedding_dim=0"):
        nn.Embedding(4, 0, backend=backend)
    with pytest.raises(Exception, match="5"):   # an id out of range is named
        layer(tensor.from_numpy(np.array([1, 5], np.int32), backend)).numpy()
