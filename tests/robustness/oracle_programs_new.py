"""The second round's ops for the random programs of ``oracle_programs``: powers, kinks and
ties, more activations, reductions over dims and tuples, layout ops, ``t[...]`` and the other
indexing ops, einsum, and convolution/pooling with dilation, groups and padding.

The same conventions as ``oracle_programs``: every value has shape ``C = (N, 3, 4, 4)``; each entry
is ``name: (family, tape version, jnp version)``, each taking ``(a, b, p, e)``; an op that changes
the shape is brought back to ``C`` with other ops. Inputs are random normal, so kinks (abs at 0,
ties of maximum/amax, clamp's bounds) are met with probability 0 — their conventions have their
own samples in the spec table.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jtape import tensor

PERMS = list(itertools.permutations(range(4)))
HI = lax.Precision.HIGHEST


def _dim(p: int) -> int:
    return p % 8 - 4                                # -4..3: negative dims everywhere


def _inner_dim(p: int) -> int:
    """A dim other than the batch dim (sizes 3 and 4), either sign: the batch may be 1, and the std
    of one element is 0, where sqrt has no finite derivative (neither has the oracle's)."""
    return p % 3 + 1 - 4 * ((p // 3) % 2)


def _dims(p: int) -> tuple:
    """A tuple of two different dims (mixed signs)."""
    first = p % 4
    return (first, (first + 1 + (p // 4) % 3) % 4 - 4)


def _sel(p: int, n: int) -> np.ndarray:
    """An index of length n into a dim of size n, with repeats (their gradients accumulate)."""
    return np.array([(p + k * k) % n for k in range(n)], np.int32)


def _const(backend, values):
    return tensor.from_numpy(values, backend, requires_grad=False)


def _pad_t(a):
    return a.pad(((0, 0), (0, 0), (1, 0), (0, 2)), 0.5).narrow(2, 0, 4).narrow(3, 1, 4)


def _pad_j(a):
    return jnp.pad(a, ((0, 0), (0, 0), (1, 0), (0, 2)), constant_values=0.5)[:, :, 0:4, 1:5]


def _split_t(a):
    first, rest = a.split([1, 3], 3)
    return tensor.cat([rest, first.sin()], 3)


def _split_j(a):
    first, rest = jnp.split(a, [1], axis=3)
    return jnp.concatenate([rest, jnp.sin(first)], 3)


def _window_j(a, init, op, k, s, pad):
    return lax.reduce_window(a, init, op, (1, 1, k, k), (1, 1, s, s), ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _conv_j(x, k, padding, dilation, groups):
    return lax.conv_general_dilated(x, k, (1, 1), [(padding, padding)] * 2, rhs_dilation=(dilation, dilation),
                                    feature_group_count=groups, dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                    precision=HI)


NEW_OPS = {
    # powers
    "neg": ("powers", lambda a, b, p, e: -a * b, lambda a, b, p, e: -a * b),
    "square": ("powers", lambda a, b, p, e: a.square().mul_scalar(0.5), lambda a, b, p, e: a * a * 0.5),
    "pow": ("powers", lambda a, b, p, e: (a * a + 1.0) ** b.tanh(), lambda a, b, p, e: (a * a + 1.0) ** jnp.tanh(b)),
    "pow_scalar": ("powers", lambda a, b, p, e: (a ** (p % 3 + 1)).mul_scalar(0.5),
                   lambda a, b, p, e: a ** (p % 3 + 1) * 0.5),
    "pow_fraction": ("powers", lambda a, b, p, e: (a * a + 1.0) ** -0.5, lambda a, b, p, e: (a * a + 1.0) ** -0.5),
    "rpow": ("powers", lambda a, b, p, e: 2.0 ** a.tanh(), lambda a, b, p, e: 2.0 ** jnp.tanh(a)),
    # kinks and ties
    "abs": ("piecewise", lambda a, b, p, e: abs(a) * b, lambda a, b, p, e: jnp.abs(a) * b),
    "maximum": ("piecewise", lambda a, b, p, e: a.maximum(b), lambda a, b, p, e: jnp.maximum(a, b)),
    "minimum": ("piecewise", lambda a, b, p, e: a.minimum(b * 0.5), lambda a, b, p, e: jnp.minimum(a, b * 0.5)),
    "clamp": ("piecewise", lambda a, b, p, e: a.clamp(-0.5, 0.7), lambda a, b, p, e: jnp.clip(a, -0.5, 0.7)),
    "clamp_min": ("piecewise", lambda a, b, p, e: a.clamp(min=-0.2), lambda a, b, p, e: jnp.maximum(a, -0.2)),
    # more unary ops and activations
    "log1p": ("unary2", lambda a, b, p, e: (a * a).log1p(), lambda a, b, p, e: jnp.log1p(a * a)),
    "expm1": ("unary2", lambda a, b, p, e: a.tanh().expm1(), lambda a, b, p, e: jnp.expm1(jnp.tanh(a))),
    "erf": ("unary2", lambda a, b, p, e: a.erf(), lambda a, b, p, e: jax.scipy.special.erf(a)),
    "tan": ("unary2", lambda a, b, p, e: a.tanh().tan(), lambda a, b, p, e: jnp.tan(jnp.tanh(a))),
    "atan": ("unary2", lambda a, b, p, e: a.atan(), lambda a, b, p, e: jnp.arctan(a)),
    "gelu": ("activation2", lambda a, b, p, e: a.gelu(), lambda a, b, p, e: jax.nn.gelu(a, approximate=False)),
    "gelu_tanh": ("activation2", lambda a, b, p, e: a.gelu("tanh"),
                  lambda a, b, p, e: jax.nn.gelu(a, approximate=True)),
    "leaky_relu": ("activation2", lambda a, b, p, e: a.leaky_relu(0.1), lambda a, b, p, e: jax.nn.leaky_relu(a, 0.1)),
    "elu": ("activation2", lambda a, b, p, e: a.elu(0.5), lambda a, b, p, e: jax.nn.elu(a, 0.5)),
    "softplus": ("activation2", lambda a, b, p, e: a.softplus(), lambda a, b, p, e: jax.nn.softplus(a)),
    "log_softmax": ("activation2", lambda a, b, p, e: a.log_softmax(_dim(p)),
                    lambda a, b, p, e: jax.nn.log_softmax(a, axis=_dim(p))),
    # reductions over a dim or a tuple of dims, broadcast back
    "logsumexp": ("reduction2", lambda a, b, p, e: b + a.logsumexp(_dims(p), keepdim=True),
                  lambda a, b, p, e: b + jax.nn.logsumexp(a, axis=_dims(p), keepdims=True)),
    "amax": ("reduction2", lambda a, b, p, e: b + a.amax(_dim(p), keepdim=True),
             lambda a, b, p, e: b + jnp.max(a, axis=_dim(p), keepdims=True)),
    "amin": ("reduction2", lambda a, b, p, e: b * a.amin(_dims(p), keepdim=True),
             lambda a, b, p, e: b * jnp.min(a, axis=_dims(p), keepdims=True)),
    "prod": ("reduction2", lambda a, b, p, e: b * (a.tanh() + 1.5).prod(_dim(p), keepdim=True),
             lambda a, b, p, e: b * jnp.prod(jnp.tanh(a) + 1.5, axis=_dim(p), keepdims=True)),
    "var": ("reduction2", lambda a, b, p, e: b + a.var(_dims(p), keepdim=True),
            lambda a, b, p, e: b + jnp.var(a, axis=_dims(p), keepdims=True, ddof=1)),
    # (std of tanh(a) + a ramp: a layout op before it (triu, tril) can zero a whole row, whose std is
    # 0, where sqrt has no derivative in jtape or the oracle; the ramp's neighbours differ by 3 or
    # more along every dim but the batch, and tanh by less than 2, so no row is ever constant)
    "std": ("reduction2", lambda a, b, p, e: b * (a.tanh() + e.ramp).std(_inner_dim(p), keepdim=True, correction=0),
            lambda a, b, p, e: b * jnp.std(jnp.tanh(a) + e.ramp, axis=_inner_dim(p), keepdims=True)),
    # (away from 0, as prod: a layout op before it (triu, tril) can zero a whole row, where the norm
    # has no derivative in jtape or the oracle)
    "norm": ("reduction2", lambda a, b, p, e: b * (a.tanh() - 1.5).norm(2, _dim(p), keepdim=True),
             lambda a, b, p, e: b * jnp.sqrt(jnp.sum((jnp.tanh(a) - 1.5) ** 2, axis=_dim(p), keepdims=True))),
    "mean_tuple": ("reduction2", lambda a, b, p, e: b + a.mean(_dims(p), keepdim=True),
                   lambda a, b, p, e: b + jnp.mean(a, axis=_dims(p), keepdims=True)),
    "cumsum": ("reduction2", lambda a, b, p, e: a.cumsum(_dim(p)).mul_scalar(0.5),
               lambda a, b, p, e: jnp.cumsum(a, axis=_dim(p)) * 0.5),
    # layout
    "stack": ("layout", lambda a, b, p, e: tensor.stack([a, b.tanh()], p % 5).mean(p % 5),
              lambda a, b, p, e: jnp.mean(jnp.stack([a, jnp.tanh(b)], p % 5), p % 5)),
    "flatten": ("layout", lambda a, b, p, e: a.flatten(1, 2).tanh().reshape(e.C),
                lambda a, b, p, e: jnp.tanh(a.reshape(a.shape[0], -1, a.shape[3])).reshape(e.C)),
    "permute": ("layout", lambda a, b, p, e: a.permute(*PERMS[p % 24]).reshape(e.C),
                lambda a, b, p, e: jnp.transpose(a, PERMS[p % 24]).reshape(e.C)),
    "movedim": ("layout", lambda a, b, p, e: a.movedim(p % 4, (p // 4) % 4).reshape(e.C),
                lambda a, b, p, e: jnp.moveaxis(a, p % 4, (p // 4) % 4).reshape(e.C)),
    "flip": ("layout", lambda a, b, p, e: a.flip(_dims(p)) * b, lambda a, b, p, e: jnp.flip(a, _dims(p)) * b),
    "pad": ("layout", lambda a, b, p, e: _pad_t(a),
            lambda a, b, p, e: _pad_j(a)),
    "repeat": ("layout", lambda a, b, p, e: a.repeat(1, 1, 2, 1).narrow(2, p % 5, 4),
               lambda a, b, p, e: jnp.tile(a, (1, 1, 2, 1))[:, :, p % 5:p % 5 + 4]),
    "split": ("layout", lambda a, b, p, e: _split_t(a), lambda a, b, p, e: _split_j(a)),
    "tril": ("layout", lambda a, b, p, e: b + a.tril(p % 3 - 1), lambda a, b, p, e: b + jnp.tril(a, p % 3 - 1)),
    "triu": ("layout", lambda a, b, p, e: b * a.triu(p % 3 - 1), lambda a, b, p, e: b * jnp.triu(a, p % 3 - 1)),
    # t[...] and the indexing ops
    "getitem_strided": ("indexing2", lambda a, b, p, e: tensor.cat([a[..., ::2], a[..., 1::2].sin()], 3)[:, ::-1],
                        lambda a, b, p, e: jnp.concatenate([a[..., ::2], jnp.sin(a[..., 1::2])], 3)[:, ::-1]),
    "getitem_int": ("indexing2", lambda a, b, p, e: b + a[:, p % 3, None],
                    lambda a, b, p, e: b + a[:, p % 3, None]),
    "getitem_array": ("indexing2", lambda a, b, p, e: a[:, [2, 0, 0]] * b,
                      lambda a, b, p, e: a[:, jnp.array([2, 0, 0])] * b),
    "getitem_mask": ("indexing2", lambda a, b, p, e: b + a[e.mask].tanh().sum().mul_scalar(0.1),
                     lambda a, b, p, e: b + jnp.sum(jnp.where(e.mask, jnp.tanh(a), 0.0)) * 0.1),
    "index_select": ("indexing2",
                     lambda a, b, p, e: a.index_select(p % 4, _const(a.backend, _sel(p, e.C[p % 4]))),
                     lambda a, b, p, e: jnp.take(a, _sel(p, e.C[p % 4]), axis=p % 4)),
    "masked_fill": ("indexing2", lambda a, b, p, e: a.masked_fill(e.mask, 0.25),
                    lambda a, b, p, e: jnp.where(e.mask, 0.25, a)),
    "einsum": ("einsum", lambda a, b, p, e: tensor.einsum("nchw,ncwv->nchv", a, b).mul_scalar(0.25),
               lambda a, b, p, e: jnp.einsum("nchw,ncwv->nchv", a, b, precision=HI) * 0.25),
    "einsum_reduce": ("einsum", lambda a, b, p, e: b * tensor.einsum("nchw,nchw->nc", a, b)[..., None, None],
                      lambda a, b, p, e: b * jnp.einsum("nchw,nchw->nc", a, b, precision=HI)[..., None, None]),
    # convolution and pooling with the new arguments
    "conv2d_dilated": ("conv2", lambda a, b, p, e: a.conv2d(e.kernel, 1, 2, 2),
                       lambda a, b, p, e: _conv_j(a, e.kernel, 2, 2, 1)),
    "conv2d_depthwise": ("conv2", lambda a, b, p, e: a.conv2d(e.kernel[:, :1], 1, 1, 1, 3),
                         lambda a, b, p, e: _conv_j(a, e.kernel[:, :1], 1, 1, 3)),
    "avg_pool2d": ("conv2", lambda a, b, p, e: a.avg_pool2d(3, 1, 1),
                   lambda a, b, p, e: _window_j(a, 0.0, lax.add, 3, 1, 1) / 9.0),
    "max_pool2d_padded": ("conv2", lambda a, b, p, e: a.max_pool2d(3, 1, 1),
                          lambda a, b, p, e: _window_j(a, -jnp.inf, lax.max, 3, 1, 1)),
}
