"""Random programs over every op family, written twice: once with jtape Tensors (run on the
tape) and once in plain ``jax.numpy`` (differentiated by ``jax.grad``, the oracle).

Every value in a program has one shape ``C = (N, 3, 4, 4)`` (NCHW, so conv2d and max_pool2d
apply to any of them), with the batch ``N`` drawn per example (``BATCHES``); an op that changes
the shape (pooling, strided conv, reductions, chunk, cross_entropy) brings its result back to
``C`` with other ops. A program is a list of steps ``(op, i, j, p)``: the op reads values ``i``
and ``j`` of the growing list (fan-out and diamonds), and ``p`` picks its static arguments (dims,
scalars, permutations). Each op reads ``C`` from its environment ``e``.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jtape import tensor

from .oracle_programs_new import NEW_OPS

BATCHES = (1, 2, 3)                              # N: C = (N, 3, 4, 4)
PERMS = list(itertools.permutations(range(4)))


def value_shape(n: int) -> tuple:
    return (n, 3, 4, 4)


def _even_dims(c: tuple) -> tuple:
    """The dims of ``c`` whose size is even (chunk into 2), both signs."""
    return tuple(d for i in range(4) if c[i] % 2 == 0 for d in (i, i - 4))


def _dim(p: int) -> int:
    return p % 8 - 4                                # -4..3: negative dims everywhere


# -- helpers, one per library ---------------------------------------------------------------------
def _up_t(o):
    """[2, 3, 2, 2] -> C with cat (and a scalar op and tanh on the copies)."""
    z = tensor.cat([o, o.mul_scalar(0.5)], 2)
    return tensor.cat([z, z.tanh()], 3)


def _up_j(o):
    z = jnp.concatenate([o, o * 0.5], 2)
    return jnp.concatenate([z, jnp.tanh(z)], 3)


def _conv_j(x, k, stride):
    return lax.conv_general_dilated(x, k, (stride, stride), [(1, 1), (1, 1)], dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                    precision=lax.Precision.HIGHEST)


def _pool_j(x, k, s):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), "VALID")


def _ce_j(z, t):
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, t[:, None], axis=1)[:, 0])


def _expand_target(c: tuple, d: int) -> tuple:
    """``c`` with -1 for every dim but ``d`` (expand's "keep this size")."""
    return tuple(c[i] if i == d % 4 else -1 for i in range(4))


# op name -> (family, tape version, jnp version); each takes (a, b, p, env).
OPS = {
    "add": ("arithmetic", lambda a, b, p, e: a + b, lambda a, b, p, e: a + b),
    "sub": ("arithmetic", lambda a, b, p, e: a - b, lambda a, b, p, e: a - b),
    "mul": ("arithmetic", lambda a, b, p, e: a * b.tanh(), lambda a, b, p, e: a * jnp.tanh(b)),
    "div": ("arithmetic", lambda a, b, p, e: a / (b * b + 1.0), lambda a, b, p, e: a / (b * b + 1.0)),
    "add_broadcast": ("arithmetic", lambda a, b, p, e: a + b.mean_dim(_dim(p), True),
                      lambda a, b, p, e: a + jnp.mean(b, _dim(p), keepdims=True)),
    "mul_broadcast": ("arithmetic", lambda a, b, p, e: a * b.sum_dim(_dim(p), True).tanh(),
                      lambda a, b, p, e: a * jnp.tanh(jnp.sum(b, _dim(p), keepdims=True))),
    "add_scalar": ("scalar", lambda a, b, p, e: a.add_scalar((p % 7 - 3) * 0.25),
                   lambda a, b, p, e: a + (p % 7 - 3) * 0.25),
    "sub_scalar": ("scalar", lambda a, b, p, e: a.sub_scalar((p % 7 - 3) * 0.25),
                   lambda a, b, p, e: a - (p % 7 - 3) * 0.25),
    "mul_scalar": ("scalar", lambda a, b, p, e: a.mul_scalar((p % 5 - 2) * 0.5 + 0.25),
                   lambda a, b, p, e: a * ((p % 5 - 2) * 0.5 + 0.25)),
    "div_scalar": ("scalar", lambda a, b, p, e: a.div_scalar(1 + p % 3), lambda a, b, p, e: a / (1 + p % 3)),
    "exp": ("unary", lambda a, b, p, e: a.tanh().exp(), lambda a, b, p, e: jnp.exp(jnp.tanh(a))),
    "log": ("unary", lambda a, b, p, e: (a * a + 1.0).log(), lambda a, b, p, e: jnp.log(a * a + 1.0)),
    "sqrt": ("unary", lambda a, b, p, e: (a * a + 1.0).sqrt(), lambda a, b, p, e: jnp.sqrt(a * a + 1.0)),
    "rsqrt": ("unary", lambda a, b, p, e: (a * a + 1.0).rsqrt(), lambda a, b, p, e: lax.rsqrt(a * a + 1.0)),
    "sin": ("unary", lambda a, b, p, e: a.sin(), lambda a, b, p, e: jnp.sin(a)),
    "cos": ("unary", lambda a, b, p, e: a.cos(), lambda a, b, p, e: jnp.cos(a)),
    "relu": ("activation", lambda a, b, p, e: a.relu(), lambda a, b, p, e: jax.nn.relu(a)),
    "sigmoid": ("activation", lambda a, b, p, e: a.sigmoid(), lambda a, b, p, e: jax.nn.sigmoid(a)),
    "tanh": ("activation", lambda a, b, p, e: a.tanh(), lambda a, b, p, e: jnp.tanh(a)),
    "silu": ("activation", lambda a, b, p, e: a.silu(), lambda a, b, p, e: jax.nn.silu(a)),
    "softmax": ("activation", lambda a, b, p, e: a.softmax(_dim(p)), lambda a, b, p, e: jax.nn.softmax(a, axis=_dim(p))),
    "matmul": ("matmul", lambda a, b, p, e: (a @ b).mul_scalar(0.25), lambda a, b, p, e: jnp.matmul(a, b) * 0.25),
    "matmul_broadcast": ("matmul", lambda a, b, p, e: a @ b.mean_dim(0, True),
                         lambda a, b, p, e: jnp.matmul(a, jnp.mean(b, 0, keepdims=True))),
    "conv2d": ("conv", lambda a, b, p, e: a.conv2d(e.kernel, 1, 1), lambda a, b, p, e: _conv_j(a, e.kernel, 1)),
    "conv2d_strided": ("conv", lambda a, b, p, e: _up_t(a.conv2d(e.kernel, 2, 1)),
                       lambda a, b, p, e: _up_j(_conv_j(a, e.kernel, 2))),
    "max_pool2d": ("conv", lambda a, b, p, e: _up_t(a.max_pool2d(2)), lambda a, b, p, e: _up_j(_pool_j(a, 2, 2))),
    "max_pool2d_overlapping": ("conv", lambda a, b, p, e: _up_t(a.max_pool2d(3, 1)),
                               lambda a, b, p, e: _up_j(_pool_j(a, 3, 1))),
    "cross_entropy": ("loss", lambda a, b, p, e: b + a.reshape(-1, 12).cross_entropy(e.targets),
                      lambda a, b, p, e: b + _ce_j(a.reshape(-1, 12), e.targets)),
    "sum": ("reduction", lambda a, b, p, e: b + a.sum().mul_scalar(0.01), lambda a, b, p, e: b + jnp.sum(a) * 0.01),
    "sum_dim": ("reduction", lambda a, b, p, e: a.sum_dim(_dim(p)).unsqueeze(_dim(p)).expand(e.C),
                lambda a, b, p, e: jnp.broadcast_to(jnp.expand_dims(jnp.sum(a, _dim(p)), _dim(p)), e.C)),
    "mean_dim": ("reduction",
                 lambda a, b, p, e: a.mean_dim(_dim(p)).unsqueeze(_dim(p)).expand(_expand_target(e.C, _dim(p))),
                 lambda a, b, p, e: jnp.broadcast_to(jnp.expand_dims(jnp.mean(a, _dim(p)), _dim(p)), e.C)),
    "reshape": ("shape", lambda a, b, p, e: a.reshape(4, -1, 4, 3).transpose(0, 1, 3, 2).reshape(e.C),
                lambda a, b, p, e: jnp.transpose(a.reshape(4, -1, 4, 3), (0, 1, 3, 2)).reshape(e.C)),
    "transpose": ("shape", lambda a, b, p, e: a.transpose(*PERMS[p % 24]).reshape(e.C),
                  lambda a, b, p, e: jnp.transpose(a, PERMS[p % 24]).reshape(e.C)),
    "squeeze": ("shape", lambda a, b, p, e: a.unsqueeze(p % 10 - 5).mul_scalar(1.5).squeeze(p % 10 - 5),
                lambda a, b, p, e: jnp.squeeze(jnp.expand_dims(a, p % 10 - 5) * 1.5, p % 10 - 5)),
    "expand": ("shape", lambda a, b, p, e: b + a.sum_dim(_dim(p), True).expand(*e.C),
               lambda a, b, p, e: b + jnp.broadcast_to(jnp.sum(a, _dim(p), keepdims=True), e.C)),
    "cat_chunk": ("shape", lambda a, b, p, e: _swap_t(a, _pick(_even_dims(e.C), p)),
                  lambda a, b, p, e: _swap_j(a, _pick(_even_dims(e.C), p))),
    "chunk3": ("shape", lambda a, b, p, e: _three_t(a, 1 - 4 * (p % 2)), lambda a, b, p, e: _three_j(a, 1 - 4 * (p % 2))),
    "gather": ("indexing", lambda a, b, p, e: a.gather(_dim(p), e.index[_dim(p) % 4]),
               lambda a, b, p, e: jnp.take_along_axis(a, e.index[_dim(p) % 4], axis=_dim(p))),
    "where": ("indexing", lambda a, b, p, e: a.where(a > b, b), lambda a, b, p, e: jnp.where(a > b, a, b)),
    "where_mask": ("indexing", lambda a, b, p, e: a.where(e.mask, b.mul_scalar(0.5)),
                   lambda a, b, p, e: jnp.where(e.mask, a, b * 0.5)),
    "cast": ("cast", lambda a, b, p, e: a.cast("float32").tanh().cast("float64"),
             lambda a, b, p, e: jnp.tanh(a.astype(jnp.float32)).astype(jnp.float64)),
}
OPS.update(NEW_OPS)                              # the second round's ops (oracle_programs_new.py)
FAMILIES = sorted({family for family, _, _ in OPS.values()})


def _pick(options: tuple, p: int):
    return options[p % len(options)]


def _swap_t(a, d):
    first, second = a.chunk(2, d)
    return tensor.cat([second, first.sin()], d)


def _swap_j(a, d):
    first, second = jnp.split(a, 2, axis=d)
    return jnp.concatenate([second, jnp.sin(first)], d)


def _three_t(a, d):
    x, y, z = a.chunk(3, d)
    return tensor.cat([z, x, y.mul_scalar(2.0)], d)


def _three_j(a, d):
    x, y, z = jnp.split(a, 3, axis=d)
    return jnp.concatenate([z, x, y * 2.0], d)


# -- drawing the data of one example and running a program -------------------------------------------
def draw(seed: int, n_values: int, batch: int = 2) -> dict:
    """The example's inputs and constants (NumPy, float64) for values of shape ``C = value_shape(batch)``:
    leaves a, b, the conv kernel, the cross-entropy targets, one gather index per dim, a bool
    mask, and a random weight per value for the loss (never all ones: ones hide transposition bugs)."""
    c = value_shape(batch)
    rng = np.random.default_rng(seed)
    return {
        "C": c, "a": rng.standard_normal(c), "b": rng.standard_normal(c),
        "kernel": 0.2 * rng.standard_normal((3, 3, 3, 3)),
        "targets": rng.integers(0, 12, 4 * batch).astype(np.int32),   # reshape(-1, 12): 4N rows
        "index": [rng.integers(0, c[d], c).astype(np.int32) for d in range(4)],
        "mask": rng.random(c) < 0.5,
        "weights": [rng.standard_normal(c) for _ in range(n_values)],
    }


def run(program: list, leaves: list, env: SimpleNamespace, weights: list, lib: str):
    """The program's loss: Σ over values no later op read of sum(value * weight)."""
    values = list(leaves[:2])
    unread = {0, 1}
    for name, i, j, p in program:
        a, b = i % len(values), j % len(values)
        fn = OPS[name][1] if lib == "tape" else OPS[name][2]
        values.append(fn(values[a], values[b], p, env))
        unread -= {a, b}
        unread.add(len(values) - 1)
    total = None
    for k in sorted(unread):
        term = (values[k] * weights[k]).sum() if lib == "tape" else jnp.sum(values[k] * weights[k])
        total = term if total is None else total + term
    return total


def ramp(c: tuple) -> np.ndarray:
    """A constant of shape ``c`` whose neighbours differ by 3 or more along every dim but the batch
    (the "std" op adds it, so that no row it reduces is constant)."""
    return np.broadcast_to(3.0 * np.arange(np.prod(c[1:]), dtype=np.float64).reshape(c[1:]), c).copy()


def tape_env(backend, data: dict, kernel) -> SimpleNamespace:
    const = lambda v: tensor.from_numpy(v, backend, requires_grad=False)
    return SimpleNamespace(C=data["C"], kernel=kernel, targets=const(data["targets"]),
                           index=[const(i) for i in data["index"]], mask=const(data["mask"]), ramp=const(ramp(data["C"])))


def jnp_env(data: dict, kernel) -> SimpleNamespace:
    return SimpleNamespace(C=data["C"], kernel=kernel, targets=jnp.asarray(data["targets"]),
                           index=[jnp.asarray(i) for i in data["index"]], mask=jnp.asarray(data["mask"]),
                           ramp=jnp.asarray(ramp(data["C"])))
