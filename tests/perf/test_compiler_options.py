"""On CPU, jtape's programs that convolve are compiled without YNNPACK (``JaxBackend.compiler_options``;
measured faster on every convolution, slower on plain dots) — a kernel run op by op, a deferred step,
a jtape.jit step — and programs without a convolution keep XLA's defaults. Which options a program got
is read back from what was compiled; the numbers themselves are checked by the oracle and mode tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.autodiff.jitted import Jitted
from jtape.backends import JaxBackend
from jtape.backends import jax_backend

from ..training import cross_entropy_step

pytestmark = pytest.mark.skipif(not jax_backend._option_known(), reason="this jaxlib has no YNNPACK option")


def _conv(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), [(1, 1), (1, 1)])


def test_convolves_finds_a_convolution_at_any_depth():
    x, k = jnp.ones((1, 1, 4, 4)), jnp.ones((1, 1, 3, 3))
    nested = jax.jit(lambda x, k: jnp.tanh(jax.jit(_conv)(x, k)))
    branch = jax.jit(lambda x, k: lax.platform_dependent(x, k, cpu=lambda x, k: x[:, :, 1:3, 1:3] * 2.0,
                                                         default=lambda x, k: _conv(x, k)[:, :, 1:3, 1:3]))
    plain = jax.jit(lambda x, k: jnp.tanh(x @ x) + k.sum())
    assert jax_backend.convolves(jax.make_jaxpr(_conv)(x, k))
    assert jax_backend.convolves(nested.trace(x, k).jaxpr)
    assert jax_backend.convolves(branch.trace(x, k).jaxpr)
    assert not jax_backend.convolves(plain.trace(x, k).jaxpr)


def test_the_cpu_backend_asks_for_no_ynnpack_only_when_a_program_convolves():
    cpu = JaxBackend("cpu")
    x, k = jnp.ones((1, 1, 4, 4)), jnp.ones((1, 1, 3, 3))
    assert cpu.compiler_options(jax.make_jaxpr(_conv)(x, k)) == jax_backend.NO_YNN
    assert cpu.compiler_options(jax.make_jaxpr(lambda x: jnp.tanh(x @ x))(x)) is None


def _cnn(backend):
    model = nn.Sequential(nn.Conv2D(1, 4, 3, backend, padding=1, seed=0), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3, backend, seed=1))
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((4, 1, 8, 8)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 3, 4).astype(np.int32), backend)
    return model, x, y


def _mlp(backend):
    model = nn.Sequential(nn.Linear(6, 8, backend, seed=0), nn.ReLU(), nn.Linear(8, 3, backend, seed=1))
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((4, 6)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 3, 4).astype(np.int32), backend)
    return model, x, y


def _train(model, opt, x, y, steps=4):
    step = cross_entropy_step(model, opt)
    for _ in range(steps):
        loss = step(x, y)
    return float(loss.item())


@pytest.mark.parametrize("make, convolves", [(_cnn, True), (_mlp, False)])
def test_deferred_programs_take_the_options_their_backend_asks_for(make, convolves):
    backend = autodiff.new(JaxBackend("cpu"))
    model, x, y = make(backend)
    _train(model, optim.SGD(model.parameters(), lr=0.1), x, y)
    programs = [e[0] for e in backend._deferred.programs.values()]     # (jitted, ...) or [jitted, called]
    chosen = [p for p in programs if isinstance(p, Jitted) and p.chosen is not None]
    assert chosen, "no deferred program ran"
    assert all((p.chosen is not p.plain) == convolves for p in chosen)


@pytest.mark.parametrize("make, convolves", [(_cnn, True), (_mlp, False)])
def test_a_jtape_jit_step_is_compiled_with_the_options_its_backend_asks_for(make, convolves):
    backend = autodiff.new(JaxBackend("cpu"))
    model, x, y = make(backend)
    opt = optim.SGD(model.parameters(), lr=0.1)

    step = jtape.jit(cross_entropy_step(model, opt), state=[model, opt])
    step(x, y)
    text = step.lower(x, y).compile().as_text()
    if convolves:
        assert "__ynn" not in text
    # the same step eager (deferred) and compiled: the same numbers
    eager_backend = autodiff.new(JaxBackend("cpu"))
    model2, x2, y2 = make(eager_backend)
    opt2 = optim.SGD(model2.parameters(), lr=0.1)
    _train(model2, opt2, x2, y2, steps=1)     # the step above
    eager = cross_entropy_step(model2, opt2)
    for _ in range(3):
        step(x, y)
        eager(x2, y2)
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)


def test_op_by_op_convolution_kernels_run_without_ynnpack_and_others_with_the_defaults():
    inner = JaxBackend("cpu")
    backend = autodiff.new(inner, defer=False)
    model, x, y = _cnn(backend)
    _train(model, optim.SGD(model.parameters(), lr=0.1), x, y, steps=2)
    conv = inner._kernels["conv2d"]
    assert isinstance(conv, jax_backend._Kernel) and conv.chosen is not None and conv.chosen is not conv.plain
    relu = inner._kernels["relu"]
    assert not isinstance(relu, jax_backend._Kernel) or relu.chosen is relu.plain
