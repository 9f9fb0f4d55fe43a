"""Random programs (DAGs with reuse, fan-out, diamonds and broadcasting) over every op family,
differentiated by the tape and by jax.grad of the same program written in plain jax.numpy.

A program is a list of steps ``(op, i, j)`` over a growing list of values; every value can be
read again later (fan-out), two reads of one value make diamonds. Each example draws its sizes
``(m, n)`` from ``SIZES`` (oblong, square, a single row or column; a short list,
so JaxBackend compiles each op for a few shapes only); the leaves have shapes (m, n), (m, 1) and
(1, n), and every op's result has one of these shapes, so all values broadcast against each other. The loss sums every value
not yet read (weighted), so every step matters.

Fresh programs every run: hypothesis is seeded with the run's seed (``JTAPE_SEED``, see
``tests/seeding.py``), which a failure prints; setting it replays the run.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st
from jax import lax

from jtape import autodiff, tensor

from ..conftest import make_inner
from ..seeding import RUN_SEED, replay_hint


# -- helpers, one per library: e carries m, n and the example's constants --------------------------------
def _full_t(a, e):
    return a.expand(e.m, e.n)


def _full_j(a, e):
    return jnp.broadcast_to(a, (e.m, e.n))


def _conv_t(a, e):
    return _full_t(a, e).reshape(1, 1, e.m, e.n).conv2d(e.kernel, 1, 1).reshape(e.m, e.n)


def _conv_j(a, e):
    x = _full_j(a, e).reshape(1, 1, e.m, e.n)
    out = lax.conv_general_dilated(x, e.kernel, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                   precision=lax.Precision.HIGHEST)
    return out.reshape(e.m, e.n)


def _pool_t(a, e):
    """A (1, 2) max-pool with stride 1 ((m, n-1)), then the first column again: (m, n)."""
    x = _full_t(a, e)
    if e.n == 1:
        return x
    pooled = x.reshape(1, 1, e.m, e.n).max_pool2d((1, 2), 1).reshape(e.m, e.n - 1)
    return tensor.cat([pooled, x.gather(1, e.first_column)], 1)


def _pool_j(a, e):
    x = _full_j(a, e)
    if e.n == 1:
        return x
    pooled = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2), (1, 1), "VALID")
    return jnp.concatenate([pooled, x[:, :1]], 1)


def _ce_j(z, t):
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, t[:, None], axis=1)[:, 0])


def _cat_chunk_t(a, b, e):
    first, second = tensor.cat([_full_t(a, e), _full_t(b, e)], 0).chunk(2, 0)
    return first * second.sin()


def _cat_chunk_j(a, b, e):
    first, second = jnp.split(jnp.concatenate([_full_j(a, e), _full_j(b, e)], 0), 2, 0)
    return first * jnp.sin(second)


# op name -> (family, arity, jtape version, jnp version); each takes (a, b, e) (b unused by unary ops).
OPS = {
    "add": ("arithmetic", 2, lambda a, b, e: a + b, lambda a, b, e: a + b),
    "sub": ("arithmetic", 2, lambda a, b, e: a - b, lambda a, b, e: a - b),
    "mul": ("arithmetic", 2, lambda a, b, e: a * b, lambda a, b, e: a * b),
    "div": ("arithmetic", 2, lambda a, b, e: a / (b * b + 1.0), lambda a, b, e: a / (b * b + 1.0)),
    "scale": ("scalar", 1, lambda a, b, e: a.mul_scalar(-1.5).add_scalar(0.25).div_scalar(2.0).sub_scalar(1.0),
              lambda a, b, e: (a * -1.5 + 0.25) / 2.0 - 1.0),
    "exp_tanh": ("unary", 1, lambda a, b, e: a.tanh().exp(), lambda a, b, e: jnp.exp(jnp.tanh(a))),
    "log1p_sq": ("unary", 1, lambda a, b, e: (a * a + 1.0).log(), lambda a, b, e: jnp.log(a * a + 1.0)),
    "sqrt1p_sq": ("unary", 1, lambda a, b, e: (a * a + 1.0).sqrt(), lambda a, b, e: jnp.sqrt(a * a + 1.0)),
    "rsqrt1p_sq": ("unary", 1, lambda a, b, e: (a * a + 1.0).rsqrt(), lambda a, b, e: lax.rsqrt(a * a + 1.0)),
    "sin": ("unary", 1, lambda a, b, e: a.sin(), lambda a, b, e: jnp.sin(a)),
    "cos": ("unary", 1, lambda a, b, e: a.cos(), lambda a, b, e: jnp.cos(a)),
    "tanh": ("activation", 1, lambda a, b, e: a.tanh(), lambda a, b, e: jnp.tanh(a)),
    "sigmoid": ("activation", 1, lambda a, b, e: a.sigmoid(), lambda a, b, e: jax.nn.sigmoid(a)),
    "silu": ("activation", 1, lambda a, b, e: a.silu(), lambda a, b, e: jax.nn.silu(a)),
    "relu": ("activation", 1, lambda a, b, e: a.relu(), lambda a, b, e: jax.nn.relu(a)),
    "softmax": ("activation", 1, lambda a, b, e: a.softmax(-1), lambda a, b, e: jax.nn.softmax(a, axis=-1)),
    "softmax0": ("activation", 1, lambda a, b, e: a.softmax(0), lambda a, b, e: jax.nn.softmax(a, axis=0)),
    "matmul": ("matmul", 1, lambda a, b, e: _full_t(a, e) @ e.w, lambda a, b, e: _full_j(a, e) @ e.w),
    "gram": ("matmul", 2, lambda a, b, e: (_full_t(a, e) @ (_full_t(b, e).transpose() @ _full_t(b, e))).mul_scalar(0.1),
             lambda a, b, e: (_full_j(a, e) @ (_full_j(b, e).T @ _full_j(b, e))) * 0.1),
    "conv2d": ("conv", 1, lambda a, b, e: _conv_t(a, e), lambda a, b, e: _conv_j(a, e)),
    "max_pool2d": ("conv", 1, lambda a, b, e: _pool_t(a, e), lambda a, b, e: _pool_j(a, e)),
    "cross_entropy": ("loss", 2, lambda a, b, e: b + _full_t(a, e).cross_entropy(e.targets),
                      lambda a, b, e: b + _ce_j(_full_j(a, e), e.targets)),
    "sum_rows": ("reduction", 1, lambda a, b, e: a.sum_dim(-1, True), lambda a, b, e: jnp.sum(a, -1, keepdims=True)),
    "mean_cols": ("reduction", 1, lambda a, b, e: a.mean_dim(0, True), lambda a, b, e: jnp.mean(a, 0, keepdims=True)),
    "sum_all": ("reduction", 2, lambda a, b, e: b + a.sum().mul_scalar(0.1), lambda a, b, e: b + jnp.sum(a) * 0.1),
    "transpose": ("shape", 1, lambda a, b, e: _full_t(a, e).transpose().mul_scalar(2.0).transpose(),
                  lambda a, b, e: (_full_j(a, e).T * 2.0).T),
    "reshape": ("shape", 1, lambda a, b, e: _full_t(a, e).reshape(-1).tanh().reshape(e.m, e.n),
                lambda a, b, e: jnp.tanh(_full_j(a, e).reshape(-1)).reshape(e.m, e.n)),
    "unsqueeze_squeeze": ("shape", 1, lambda a, b, e: a.unsqueeze(1).mul_scalar(0.5).squeeze(1),
                          lambda a, b, e: a * 0.5),
    "cat_chunk": ("shape", 2, lambda a, b, e: _cat_chunk_t(a, b, e), lambda a, b, e: _cat_chunk_j(a, b, e)),
    "gather": ("indexing", 1, lambda a, b, e: _full_t(a, e).gather(1, e.index),
               lambda a, b, e: jnp.take_along_axis(_full_j(a, e), e.index, 1)),
    "where": ("indexing", 2, lambda a, b, e: a.where(a > b, b), lambda a, b, e: jnp.where(a > b, a, b)),
    "cast": ("cast", 1, lambda a, b, e: a.cast("float32").tanh().cast("float64"),
             lambda a, b, e: jnp.tanh(a.astype(jnp.float32)).astype(jnp.float64)),
}
FAMILIES = sorted({family for family, *_ in OPS.values()})
SIZES = ((3, 4), (4, 4), (1, 5), (5, 1))


def _constants(rng: np.random.Generator, m: int, n: int) -> dict:
    return {"w": rng.standard_normal((n, n)) / n, "kernel": 0.3 * rng.standard_normal((1, 1, 3, 3)),
            "targets": rng.integers(0, n, m).astype(np.int32), "index": rng.integers(0, n, (m, n)).astype(np.int32),
            "first_column": np.zeros((m, 1), np.int32)}


def run(program, leaves, weights, e, lib):
    values = list(leaves)
    unread = set(range(len(values)))
    for name, i, j in program:
        _, arity, tape_fn, jnp_fn = OPS[name]
        a, b = i % len(values), j % len(values)
        values.append((tape_fn if lib == "tape" else jnp_fn)(values[a], values[b], e))
        unread -= {a, b} if arity == 2 else {a}
        unread.add(len(values) - 1)
    total = None
    for k in sorted(unread):
        w = weights[k % len(weights)]
        s = (values[k] * w).sum() if lib == "tape" else jnp.sum(values[k] * w)
        total = s if total is None else total + s
    return total


steps = st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 10**6), st.integers(0, 10**6)),
                 min_size=4, max_size=20)


def check_program(inner_name, program, data_seed, size):
    """The tape's loss and gradients for ``program`` on ``inner_name`` equal jax's."""
    note(replay_hint())
    m, n = size
    backend = autodiff.new(make_inner(inner_name))
    rng = np.random.default_rng(data_seed)
    shapes = [(m, n), (m, 1), (1, n)]
    xs = [rng.standard_normal(s) for s in shapes]
    weights = [rng.standard_normal((m, n)) for _ in range(4)]
    consts = _constants(rng, m, n)
    const = lambda v: tensor.from_numpy(v, backend, requires_grad=False)
    env_t = SimpleNamespace(m=m, n=n, **{k: const(v) for k, v in consts.items()})
    env_j = SimpleNamespace(m=m, n=n, **{k: jnp.asarray(v) for k, v in consts.items()})
    leaves = [tensor.from_numpy(x, backend) for x in xs]
    loss = run(program, leaves, [const(w) for w in weights], env_t, "tape")
    grads = backend.tape().gradient(loss, leaves, unconnected_gradients="zero")
    want_loss, want = jax.value_and_grad(lambda *v: run(program, v, [jnp.asarray(w) for w in weights], env_j, "jnp"),
                                         argnums=(0, 1, 2))(*[jnp.asarray(x) for x in xs])
    tol = 1e-5 if any(step[0] == "cast" for step in program) else 1e-10   # a float32 round trip rounds
    np.testing.assert_allclose(loss.item(), float(want_loss), rtol=tol, atol=tol)
    for got, ref in zip(grads, want):
        got = got.numpy()
        assert got.shape == ref.shape and got.dtype == ref.dtype
        scale = max(1.0, float(np.max(np.abs(ref))))
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol * scale)


# 50 examples a run: most on NumpyBackend, where an example costs milliseconds; JaxBackend compiles
# each op for each new shape, so it gets fewer.
_SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
_DRAWS = {"program": steps, "data_seed": st.integers(0, 2**32 - 1), "size": st.sampled_from(SIZES)}


@seed(RUN_SEED)
@settings(max_examples=35, **_SETTINGS)
@given(**_DRAWS)
def test_random_program_on_numpy_matches_jax_grad(program, data_seed, size):
    check_program("numpy", program, data_seed, size)


@seed(RUN_SEED)
@settings(max_examples=15, **_SETTINGS)
@given(**_DRAWS)
def test_random_program_on_jax_matches_jax_grad(program, data_seed, size):
    check_program("jax", program, data_seed, size)


def test_the_ops_cover_every_family():
    assert set(FAMILIES) == {"arithmetic", "scalar", "unary", "activation", "matmul", "conv", "loss", "reduction",
                             "shape", "indexing", "cast"}
