"""train()/eval(), buffers and random keys under ``jtape.jit``: the compiled step gives what the
eager step gives — the same dropout masks, the same buffer updates — draws a new mask every step,
honours the mode it is called in, and leaves no tracer behind."""

import jax
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend


class RunningMean(nn.Module):
    """A Linear layer that keeps the running mean of its outputs (training mode only) and counts
    its training calls: two buffers updated in forward, as a BatchNorm's are."""

    def __init__(self, n_in: int, n_out: int, backend, momentum: float = 0.1):
        self.linear = nn.Linear(n_in, n_out, backend)
        self.momentum = momentum
        self.register_buffer("running_mean", tensor.zeros((n_out,), backend))
        self.register_buffer("calls", tensor.zeros((), backend, "int32"))

    def forward(self, x):
        y = self.linear(x)
        if self.training:
            batch = y.detach().mean(0)
            self.running_mean.assign(self.running_mean * (1 - self.momentum) + batch * self.momentum)
            self.calls.assign(self.calls + 1)
        return y


def make(seed: int, backend):
    jtape.random.seed(seed)
    model = nn.Sequential(RunningMean(6, 12, backend), nn.ReLU(), nn.Dropout(0.4), nn.Linear(12, 12, backend),
                          nn.ReLU(), nn.Dropout(0.3, seed=17), nn.Linear(12, 1, backend))
    return model, optim.Adam(model.parameters(), lr=1e-2)


def data(backend):
    x = np.sin(np.arange(16 * 6, dtype=np.float32).reshape(16, 6))
    return tensor.from_numpy(x, backend, requires_grad=False), np.cos(x[:, :1])


def train(compiled: bool, steps: int = 5, seed: int = 0):
    backend = autodiff.new(JaxBackend("cpu"))
    model, opt = make(seed, backend)
    x, y = data(backend)

    def step(x):
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    if compiled:
        step = jtape.jit(step, state=[model, opt])
    losses = [float(step(x).item()) for _ in range(steps)]
    return losses, model


def test_eager_and_compiled_training_with_dropout_agree_step_by_step():
    eager, eager_model = train(False)
    eager_key = np.asarray(jtape.random.get_key())
    compiled, compiled_model = train(True)
    np.testing.assert_allclose(compiled, eager, rtol=2e-5)
    assert len(set(np.round(eager, 6))) == len(eager)
    for (name, a), (_, b) in zip(eager_model.state_dict().items(), compiled_model.state_dict().items()):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-7, err_msg=name)
    np.testing.assert_array_equal(compiled_model[0].calls.numpy(), 5)
    key = jtape.random.get_key()                                      # carried out of the program
    assert isinstance(key, jax.Array) and not isinstance(key, jax.core.Tracer)
    np.testing.assert_array_equal(np.asarray(key), eager_key)
    own = compiled_model[5].generator.key                             # a layer's own generator too
    np.testing.assert_array_equal(np.asarray(own), np.asarray(eager_model[5].generator.key))


def test_seed_makes_the_whole_program_reproducible():
    assert train(True, 3, seed=1)[0] == train(True, 3, seed=1)[0]
    assert train(False, 3, seed=1)[0] != train(False, 3, seed=2)[0]


def _dropout_program():
    backend = autodiff.new(JaxBackend("cpu"))
    jtape.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 64, backend), nn.Dropout(0.5))
    traces = []

    @jtape.jit(state=[model])
    def forward(x):
        traces.append(tuple(m.training for m in model.modules()))
        return model(x)

    x = tensor.from_numpy(np.ones((8, 4), np.float32), backend, requires_grad=False)
    with jtape.no_grad():
        plain = model[0](x).numpy()
    return model, forward, x, plain, traces


def test_a_new_mask_every_compiled_step():
    _, forward, x, plain, traces = _dropout_program()
    first, second = forward(x).numpy(), forward(x).numpy()
    assert not np.array_equal(first == 0, second == 0)
    for out in (first, second):
        kept = out != 0
        np.testing.assert_allclose(out[kept], 2 * plain[kept], rtol=1e-6)
        assert 0.3 < kept.mean() < 0.7
    assert traces == [(True, True, True)]                                          # one program, called twice


def test_mode_switching_compiles_once_per_mode_and_never_reuses_the_other():
    model, forward, x, plain, traces = _dropout_program()
    dropped = forward(x).numpy()
    assert (dropped == 0).any()
    model.eval()
    np.testing.assert_allclose(forward(x).numpy(), plain, rtol=1e-6)    # no dropout in eval mode
    np.testing.assert_allclose(forward(x).numpy(), plain, rtol=1e-6)
    model.train()
    again = forward(x).numpy()
    assert (again == 0).any() and not np.array_equal(again == 0, dropped == 0)
    model.eval()
    np.testing.assert_allclose(forward(x).numpy(), plain, rtol=1e-6)
    assert traces == [(True, True, True), (False, False, False)]                                   # one trace per mode, then cached
    model[1].train()                                                   # a sub-module's flag is part of the mode
    assert (forward(x).numpy() == 0).any() and traces[-1] == (False, False, True) and len(traces) == 3


def test_buffers_through_jit_hold_concrete_values_as_eager_would():
    backend = autodiff.new(JaxBackend("cpu"))
    x, _ = data(backend)
    results = []
    for compiled in (False, True):
        jtape.random.seed(0)
        layer = RunningMean(6, 3, backend)
        fwd = jtape.jit(lambda x, layer=layer: layer(x), state=[layer]) if compiled else layer
        for _ in range(3):
            fwd(x)
        layer.eval()
        fwd(x)                                                         # eval: the buffers stay
        results.append(layer)
    eager, compiled = results
    for b in compiled.buffers():
        assert isinstance(b.data, jax.Array) and not isinstance(b.data, jax.core.Tracer)
        assert not b.raw().requires_grad
    np.testing.assert_allclose(compiled.running_mean.numpy(), eager.running_mean.numpy(), rtol=1e-6)
    assert compiled.calls.numpy() == eager.calls.numpy() == 3
    assert compiled.calls.dtype is tensor.int32
    expected = np.zeros(3, np.float32)
    y = eager.linear(x).numpy().mean(0)
    for _ in range(3):
        expected = 0.9 * expected + 0.1 * y
    np.testing.assert_allclose(eager.running_mean.numpy(), expected, rtol=1e-5)


def test_buffers_in_state_dict_never_in_parameters():
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Sequential(RunningMean(2, 3, backend), nn.Linear(3, 1, backend))
    assert [n for n, _ in model.named_buffers()] == ["0.running_mean", "0.calls"]
    assert all(p is not b for p in model.parameters() for b in model.buffers())
    assert len(model.parameters()) == 4
    state = model.state_dict()
    assert list(state) == ["0.linear.weight", "0.linear.bias", "1.weight", "1.bias", "0.running_mean", "0.calls"]
    state["0.running_mean"] = np.array([1.0, 2.0, 3.0])
    state["0.calls"] = np.array(7)
    fresh = nn.Sequential(RunningMean(2, 3, backend), nn.Linear(3, 1, backend))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh[0].running_mean.numpy(), [1, 2, 3])
    assert fresh[0].calls.numpy() == 7 and fresh[0].calls.dtype is tensor.int32
    assert not fresh[0].running_mean.raw().requires_grad
    del state["0.calls"]
    with pytest.raises(KeyError, match=r"missing \['0.calls'\]"):
        fresh.load_state_dict(state)
    with pytest.raises(tensor.ShapeError, match="'0.running_mean' has shape"):
        fresh.load_state_dict({**state, "0.running_mean": np.zeros(4), "0.calls": 0})


def test_buffer_assign_takes_tensors_and_checks_shape():
    backend = autodiff.new(JaxBackend("cpu"))
    layer = RunningMean(2, 3, backend)
    layer.running_mean.assign(tensor.ones((3,), backend))
    np.testing.assert_array_equal(layer.running_mean.numpy(), np.ones(3))
    with pytest.raises(tensor.ShapeError, match=r"got shape \(4,\); expected \(3,\)"):
        layer.running_mean.assign(tensor.ones((4,), backend))


def test_generators_in_state_and_bad_state():
    backend = autodiff.new(JaxBackend("cpu"))
    g = jtape.random.Generator(seed=4)

    @jtape.jit(state=[g])
    def draw():
        return tensor.randn((3,), backend, key=g.next_key())

    a, b = draw().numpy(), draw().numpy()
    assert not np.array_equal(a, b)
    g2 = jtape.random.Generator(seed=4)
    np.testing.assert_array_equal(a, tensor.randn((3,), backend, key=g2.next_key()).numpy())
    np.testing.assert_array_equal(b, tensor.randn((3,), backend, key=g2.next_key()).numpy())
    with pytest.raises(tensor.ArgumentError, match="got state of type str; expected Modules"):
        jtape.jit(lambda: None, state=["model"])
