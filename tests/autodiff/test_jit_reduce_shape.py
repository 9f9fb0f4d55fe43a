"""The new reductions and shape ops under ``jtape.jit``: a compiled step (forward, tape backward with
the hand-derived rules) gives what the eager step gives, and what jax.grad of the same program in
``jax.numpy`` gives — ties in amax included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtape
from jtape import autodiff, tensor
from jtape.backends import JaxBackend


def _program_t(x, w):
    """amax (over a tuple of dims, with ties), var, stack, and the other new ops, on the tape."""
    h = tensor.stack([x * w, (x - w).tanh(), w.flip(-1)], dim=1)                       # [B, 3, D]
    top = h.amax(dim=(1, -1)) + h.amin(-1).sum(1)                                        # [B]
    spread = (x * w).var(0, keepdim=True).sum() + x.std(-1, correction=0).sum()
    shaped = h.permute(2, 0, 1).flatten(1).pad(((1, 0), (0, 2)), 0.5).cumsum(0).repeat(2, 1)
    first, rest = shaped.split([1, 7], 0)
    tri = w.stack([w, w], 0).tril(1).prod(0)
    return top.sum() + spread + rest.norm() * first.mean() + tri.sum() + x.movedim(0, 1).triu().norm(1)


def _program_j(x, w):
    h = jnp.stack([x * w, jnp.tanh(x - w), jnp.flip(w, -1)], axis=1)
    top = jnp.max(h, axis=(1, -1)) + jnp.min(h, axis=-1).sum(1)
    spread = jnp.var(x * w, axis=0, ddof=1, keepdims=True).sum() + jnp.std(x, axis=-1).sum()
    p = jnp.transpose(h, (2, 0, 1))
    p = jnp.cumsum(jnp.pad(p.reshape(p.shape[0], -1), ((1, 0), (0, 2)), constant_values=0.5), axis=0)
    shaped = jnp.tile(p, (2, 1))
    first, rest = shaped[:1], shaped[1:]
    tri = jnp.prod(jnp.tril(jnp.stack([w, w, w]), 1), axis=0)
    return (top.sum() + spread + jnp.linalg.vector_norm(rest) * first.mean() + tri.sum()
            + jnp.abs(jnp.triu(jnp.moveaxis(x, 0, 1))).sum())


def test_compiled_step_with_amax_var_stack_matches_eager_and_jax():
    backend = autodiff.new(JaxBackend("cpu"))
    rng = np.random.default_rng(0)
    # the maxima of rows 0 and 1 of h tie (w's ties; |x| < 0.5 keeps x * w and tanh below them),
    # and w's row 2 has a tied minimum: the tie rule of amax and amin decides w's gradient
    x_np = rng.uniform(-0.5, 0.5, (4, 3)).astype(np.float32)
    w_np = np.array([[2.0, 1.0, 2.0], [1.5, 1.5, 1.5], [0.5, 2.5, 0.5], [1.0, 0.75, 3.0]], np.float32)
    w_eager = tensor.from_numpy(w_np, backend)
    w_compiled = tensor.from_numpy(w_np, backend)
    x = tensor.from_numpy(x_np, backend, requires_grad=False)

    def step(w):
        def run(x):
            loss = _program_t(x, w)
            loss.backward()
            return loss
        return run

    eager = step(w_eager)(x)
    compiled_step = jtape.jit(step(w_compiled), state=[w_compiled])
    with jax.checking_leaks():
        compiled = compiled_step(x)
    loss, grad = jax.value_and_grad(_program_j, argnums=1)(jnp.asarray(x_np, jnp.float64),
                                                          jnp.asarray(w_np, jnp.float64))
    np.testing.assert_allclose(compiled.item(), eager.item(), rtol=1e-6)
    np.testing.assert_allclose(w_compiled.grad.numpy(), w_eager.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled.item(), float(loss), rtol=1e-5)
    np.testing.assert_allclose(w_compiled.grad.numpy(), np.asarray(grad), rtol=1e-4, atol=1e-5)
    assert backend.tape().num_ops() == 0                                   # the trace recorded on its own tape
    h = np.asarray(jnp.stack([x_np * w_np, jnp.tanh(x_np - w_np), w_np[:, ::-1]], axis=1))
    assert [int((h[b] == h[b].max()).sum()) for b in range(4)] == [2, 3, 1, 1]     # the ties are really there
