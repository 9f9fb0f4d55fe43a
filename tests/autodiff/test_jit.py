"""The tape works unchanged inside jax.jit: RawTensors hold tracers, rules run as traced code."""

import jax
import numpy as np

from jtape import autodiff, tensor
from jtape.backends import JaxBackend
from jtape.tensor import RawTensor


def test_whole_step_traces_under_jit():
    inner = JaxBackend("cpu")

    def loss_and_grad(w_raw, x_raw):
        backend = autodiff.new(inner)                      # a tape private to this trace
        w, x = tensor.Tensor(w_raw, backend), tensor.Tensor(x_raw, backend)
        loss = (x @ w).tanh().sum()
        grads = autodiff.backward(loss, backend)
        return loss.raw(), grads[w_raw]

    rng = np.random.default_rng(0)
    w = inner.from_numpy(rng.standard_normal((4, 3)).astype(np.float32))
    x = inner.from_numpy(rng.standard_normal((5, 4)).astype(np.float32))
    eager = loss_and_grad(w, x)
    with jax.checking_leaks():
        compiled = jax.jit(loss_and_grad)(w, x)
    assert isinstance(compiled[1], RawTensor) and compiled[1].shape == (4, 3)
    np.testing.assert_allclose(np.asarray(compiled[0].data), np.asarray(eager[0].data), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(compiled[1].data), np.asarray(eager[1].data), rtol=1e-6)
