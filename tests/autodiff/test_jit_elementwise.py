"""pow, pow_scalar and logsumexp inside a compiled step (``jtape.jit``): the same loss, gradients
and update as the eager step, and as ``jax.value_and_grad`` of the same program in jax.numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend

RNG = np.random.default_rng(0)
X = RNG.uniform(0.5, 2.0, (5, 4)).astype(np.float32)          # positive bases
W0 = RNG.uniform(-1.0, 1.5, (4,)).astype(np.float32)           # exponents, one per column
V0 = RNG.standard_normal((4, 3)).astype(np.float32)


def _loss(x, w, v):
    """pow (tensor ** tensor, broadcast), pow_scalar, ** with a number base, logsumexp over a tuple
    of dims and over one dim (keepdim), log_softmax."""
    h = x ** w                                                       # pow: (5, 4) ** (4,)
    z = (h @ v) * 0.5
    a = z.logsumexp(dim=1, keepdim=True)                             # (5, 1)
    b = z.logsumexp(dim=(0, 1))                                      # 0-d
    reg = (w ** 2).sum() * 0.1 + (2.0 ** w).sum() * 0.01             # pow_scalar and s ** t
    return a.mean() + b * 0.1 + reg - z.log_softmax(1).mean()


def _jax_loss(w, v):
    h = jnp.asarray(X) ** w
    z = (h @ v) * 0.5
    a = jax.nn.logsumexp(z, axis=1, keepdims=True)
    b = jax.nn.logsumexp(z, axis=(0, 1))
    reg = jnp.sum(w ** 2) * 0.1 + jnp.sum(2.0 ** w) * 0.01
    return jnp.mean(a) + b * 0.1 + reg - jnp.mean(jax.nn.log_softmax(z, axis=1))


def _model(backend):
    w = nn.Parameter(tensor.from_numpy(W0, backend))
    v = nn.Parameter(tensor.from_numpy(V0, backend))
    return w, v, optim.SGD([w, v], lr=0.1)


def _step(w, v, opt):
    def step(x):
        loss = _loss(x, w, v)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return step


def test_compiled_step_with_pow_and_logsumexp_matches_eager_and_jax():
    backend = autodiff.new(JaxBackend("cpu"))
    x = tensor.from_numpy(X, backend, requires_grad=False)
    w1, v1, opt1 = _model(backend)
    w2, v2, opt2 = _model(backend)
    eager, compiled = _step(w1, v1, opt1), jtape.jit(_step(w2, v2, opt2), state=[w2, v2, opt2])

    params, sgd = (jnp.asarray(W0), jnp.asarray(V0)), optax.sgd(0.1)
    opt_state = sgd.init(params)
    for _ in range(3):
        loss_e, loss_c = eager(x), compiled(x)
        value, grads = jax.value_and_grad(lambda p: _jax_loss(*p))(params)
        updates, opt_state = sgd.update(grads, opt_state)
        params = optax.apply_updates(params, updates)
        np.testing.assert_allclose(loss_c.item(), loss_e.item(), rtol=1e-5)
        np.testing.assert_allclose(loss_c.item(), float(value), rtol=1e-5)
        for p_eager, p_compiled, p_jax in ((w1, w2, params[0]), (v1, v2, params[1])):
            np.testing.assert_allclose(p_compiled.numpy(), p_eager.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(p_compiled.numpy(), np.asarray(p_jax), rtol=1e-5, atol=1e-6)
    assert backend.tape().num_ops() == 0          # the compiled steps recorded on private tapes


def test_gradients_of_pow_and_logsumexp_inside_jax_jit_match_jax_grad():
    inner = JaxBackend("cpu")

    def grads(w_raw, v_raw):
        backend = autodiff.new(inner)                                 # a tape private to this trace
        w, v = tensor.Tensor(w_raw, backend), tensor.Tensor(v_raw, backend)
        x = tensor.from_numpy(X, backend, requires_grad=False)
        loss = _loss(x, w, v)
        g = autodiff.backward(loss, backend)
        return loss.raw(), g[w_raw], g[v_raw]

    w, v = inner.from_numpy(W0), inner.from_numpy(V0)
    loss, gw, gv = jax.jit(grads)(w, v)
    value, (ew, ev) = jax.value_and_grad(_jax_loss, argnums=(0, 1))(jnp.asarray(W0), jnp.asarray(V0))
    np.testing.assert_allclose(np.asarray(loss.data), float(value), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gw.data), np.asarray(ew), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gv.data), np.asarray(ev), rtol=1e-5, atol=1e-6)
