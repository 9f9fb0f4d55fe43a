"""Random programs (DAGs with reuse, fan-out, diamonds and broadcasting), differentiated by the
tape and by jax.grad of the same program written in plain jax.numpy.

A program is a list of steps ``(op, i, j)`` over a growing list of values; every value can be
read again later (fan-out), two reads of one value make diamonds, and the three value shapes
(3, 4), (3, 1), (1, 4) broadcast against each other. The loss sums every value not yet read, so
every step matters.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jtape import autodiff, tensor

from ..conftest import make_inner

# op name -> (arity, jtape version, jnp version). Domains are safe for any real input.
OPS = {
    "add": (2, lambda a, b: a + b, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b, lambda a, b: a * b),
    "div": (2, lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
    "where": (2, lambda a, b: a.where(a > b, b), lambda a, b: jnp.where(a > b, a, b)),
    "tanh": (1, lambda a: a.tanh(), jnp.tanh),
    "sigmoid": (1, lambda a: a.sigmoid(), jax.nn.sigmoid),
    "silu": (1, lambda a: a.silu(), jax.nn.silu),
    "sin": (1, lambda a: a.sin(), jnp.sin),
    "cos": (1, lambda a: a.cos(), jnp.cos),
    "exp_tanh": (1, lambda a: a.tanh().exp(), lambda a: jnp.exp(jnp.tanh(a))),
    "log1p_sq": (1, lambda a: (a * a + 1.0).log(), lambda a: jnp.log(a * a + 1.0)),
    "sqrt1p_sq": (1, lambda a: (a * a + 1.0).sqrt(), lambda a: jnp.sqrt(a * a + 1.0)),
    "softmax": (1, lambda a: a.softmax(-1), lambda a: jax.nn.softmax(a, axis=-1)),
    "sum_rows": (1, lambda a: a.sum_dim(-1, True), lambda a: jnp.sum(a, axis=-1, keepdims=True)),
    "mean_cols": (1, lambda a: a.mean_dim(0, True), lambda a: jnp.mean(a, axis=0, keepdims=True)),
    "scale": (1, lambda a: a.mul_scalar(-1.5).add_scalar(0.25), lambda a: a * -1.5 + 0.25),
}
SHAPES = [(3, 4), (3, 1), (1, 4)]

steps = st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 10**6), st.integers(0, 10**6)),
                 min_size=4, max_size=20)


def run(program, inputs, lib):
    values = list(inputs)
    unread = set(range(len(values)))
    for name, i, j in program:
        arity, tape_fn, jnp_fn = OPS[name]
        fn = tape_fn if lib == "tape" else jnp_fn
        a, b = i % len(values), j % len(values)
        values.append(fn(values[a], values[b]) if arity == 2 else fn(values[a]))
        unread -= {a, b} if arity == 2 else {a}
        unread.add(len(values) - 1)
    total = None
    for k in sorted(unread):
        s = values[k].sum() if lib == "tape" else jnp.sum(values[k])
        total = s if total is None else total + s
    return total


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(program=steps, seed=st.integers(0, 2**16))
def test_random_program_matches_jax_grad(inner_name, program, seed):
    backend = autodiff.new(make_inner(inner_name))
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in SHAPES]
    leaves = [tensor.from_numpy(x, backend) for x in xs]
    loss = run(program, leaves, "tape")
    grads = backend.tape().gradient(loss, leaves, unconnected_gradients="zero")
    want = jax.grad(lambda *v: run(program, v, "jnp"), argnums=(0, 1, 2))(*[jnp.asarray(x) for x in xs])
    for got, ref in zip(grads, want):
        got = got.numpy()
        assert got.shape == ref.shape and got.dtype == ref.dtype
        scale = max(1.0, float(np.max(np.abs(ref))))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * scale)
