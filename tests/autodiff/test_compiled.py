"""jtape.jit: a whole step (forward, tape backward, optimizer update) as one XLA program."""

import jax
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor.errors import BackendError

from ..training import cross_entropy_step


def _model(backend, opt_cls=optim.SGD, **opt_kw):
    model = nn.Sequential(nn.Linear(8, 16, backend, seed=0), nn.Tanh(), nn.Linear(16, 3, backend, seed=1))
    return model, opt_cls(model.parameters(), **opt_kw)


def _data(backend, n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = tensor.from_numpy(rng.standard_normal((n, 8)).astype(np.float32), backend)
    y = tensor.from_numpy(rng.integers(0, 3, n).astype(np.int32), backend)
    return x, y


@pytest.mark.parametrize("opt_cls, kw", [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         (optim.Adam, dict(lr=0.01)), (optim.AdamW, dict(lr=0.01))])
def test_compiled_step_matches_eager(opt_cls, kw):
    backend = autodiff.new(JaxBackend("cpu"))
    m1, o1 = _model(backend, opt_cls, **kw)
    m2, o2 = _model(backend, opt_cls, **kw)
    eager, compiled = cross_entropy_step(m1, o1), jtape.jit(cross_entropy_step(m2, o2), state=[m2, o2])
    for i in range(6):
        x, y = _data(backend, seed=i)
        le = eager(x, y).item()
        with jax.checking_leaks():
            lc = compiled(x, y)
        assert isinstance(lc, tensor.Tensor)
        np.testing.assert_allclose(lc.item(), le, rtol=1e-6)
    for (name, p), (_, q) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-6, atol=1e-6, err_msg=name)
    assert o2.steps == o1.steps == 6


def test_no_tracer_lands_on_the_users_tape_and_recompiles_only_for_new_shapes():
    backend = autodiff.new(JaxBackend("cpu"))
    model, opt = _model(backend, lr=0.1)
    traces = []

    def step(x, y):
        traces.append(tuple(x.shape))
        return cross_entropy_step(model, opt)(x, y)

    compiled = jtape.jit(step, state=[model, opt])
    backend.tape().clear()
    for seed in range(3):
        compiled(*_data(backend, seed=seed))
    compiled(*_data(backend, n=16))
    compiled(*_data(backend, n=16, seed=5))
    assert traces == [(32, 8), (16, 8)]
    assert backend.tape().num_ops() == 0
    for p in model.parameters():
        assert isinstance(p.data, jax.Array) and not isinstance(p.data, jax.core.Tracer)


def test_gradients_left_on_parameters_come_back():
    backend = autodiff.new(JaxBackend("cpu"))
    model, opt = _model(backend, lr=0.1)
    twin, _ = _model(backend, lr=0.1)

    def grads_only(x, y):
        loss = model(x).cross_entropy(y)
        loss.backward()
        return loss

    x, y = _data(backend)
    jtape.jit(grads_only, state=[model])(x, y)
    loss = twin(x).cross_entropy(y)
    loss.backward()
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_errors_restore_state():
    backend = autodiff.new(JaxBackend("cpu"))
    model, opt = _model(backend, lr=0.1)
    before = [p.raw() for p in model.parameters()]

    def broken(x, y):
        cross_entropy_step(model, opt)(x, y)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        jtape.jit(broken, state=[model, opt])(*_data(backend))
    assert [p.raw() for p in model.parameters()] == before
    assert backend.tape().num_ops() == 0 and opt.steps == 0


def test_numpy_backend_cannot_be_compiled():
    backend = autodiff.new(NumpyBackend())
    model, opt = _model(backend, lr=0.1)
    with pytest.raises(BackendError, match="jtape.jit: parameter of shape .* lives on Autodiff\\(numpy\\)"):
        jtape.jit(cross_entropy_step(model, opt), state=[model, opt])(*_data(backend))


def test_an_out_of_range_index_raises_in_a_compiled_step_as_in_eager():
    """Compiled equals eager, or raises: an index check inside jtape.jit comes out of the program."""
    backend = autodiff.new(JaxBackend("cpu"))
    model, opt = _model(backend, lr=0.1)
    eager, compiled = cross_entropy_step(model, opt), jtape.jit(cross_entropy_step(model, opt), state=[model, opt])
    x, y = _data(backend)
    compiled(x, y)                                                  # in range: fine
    bad = tensor.from_numpy(np.full((32,), 3, np.int32), backend)  # 3 classes: 0..2
    message = r"cross_entropy: got targets values in \[3, 3\] for logits shape \(32, 3\); expected 0 <= targets < 3"
    with pytest.raises(jtape.tensor.ShapeError, match=message):
        eager(x, bad)
    with pytest.raises(jtape.tensor.ShapeError, match=message):
        compiled(x, bad)


# -- a call passes its program arrays only: what made the pytrees must still pick the program ----
def test_freezing_a_parameter_between_calls_is_a_new_program_equal_to_eager():
    """A parameter's requires_grad is not an array: a call keys its program on it (with the
    parameters' shapes and dtypes), so freezing one between calls runs a program that leaves it
    alone — the same parameters as the eager steps, never the first program's update."""
    backend = autodiff.new(JaxBackend("cpu"))
    m1, o1 = _model(backend, lr=0.1)
    m2, o2 = _model(backend, lr=0.1)
    eager, compiled = cross_entropy_step(m1, o1), jtape.jit(cross_entropy_step(m2, o2), state=[m2, o2])
    for i, frozen in enumerate([False, True, True, False, True]):
        for m in (m1, m2):
            m.parameters()[0].requires_grad_(not frozen)
        x, y = _data(backend, seed=i)
        le = eager(x, y).item()
        np.testing.assert_allclose(compiled(x, y).item(), le, rtol=1e-6)
        for (name, p), (_, q) in zip(m1.named_parameters(), m2.named_parameters()):
            np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-6, atol=1e-6, err_msg=f"call {i}: {name}")


def test_alternating_shapes_and_result_kinds_come_back_as_the_eager_function_returns_them():
    """Results are made again around the program's arrays from what each program's trace noted: with
    calls alternating between two argument shapes (two programs), each returns its own shapes — and a
    Tensor stays a Tensor (a Parameter a Parameter), a RawTensor a RawTensor, an array an array."""
    backend = autodiff.new(JaxBackend("cpu"))
    w = nn.Parameter(backend.from_numpy(np.ones((3,), np.float32)), backend)

    @jtape.jit(state=[w])
    def f(x, raw):
        y = x * 2.0
        return {"t": y, "raw": y.raw(), "w": w, "n": (y.sum(), jax.numpy.float32(1.5)), "sum": raw}

    for n in (4, 2, 4, 2):
        x = tensor.from_numpy(np.arange(n * 3, dtype=np.float32).reshape(n, 3), backend)
        raw = backend.from_numpy(np.ones((n,), np.float32))
        out = f(x, raw)
        assert type(out["t"]) is tensor.Tensor and out["t"].shape == (n, 3)
        np.testing.assert_array_equal(out["t"].numpy(), x.numpy() * 2)
        assert type(out["raw"]) is tensor.RawTensor and out["raw"].shape == (n, 3)
        assert type(out["w"]) is nn.Parameter and out["w"].backend is backend
        assert isinstance(out["n"][1], jax.Array) and float(out["n"][1]) == 1.5
        assert type(out["sum"]) is tensor.RawTensor and out["sum"].shape == (n,)
        assert out["t"].requires_grad == x.requires_grad
