"""Sharded parameters in one process (4 simulated CPU devices, 10 Adam steps), the sharding rules and their
errors, checkpoints of model and optimizer, and the HLO/memory helpers."""

import os
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec

from jtape import autodiff, distributed, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.distributed import default_spec

from .launcher import ROOT

SCRIPT = r'''
import numpy as np, jax
from jax.sharding import PartitionSpec as P
import jtape
from jtape import autodiff, distributed, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ShapeError

assert len(jax.devices()) == 4
backend = autodiff.new(JaxBackend())
mesh = distributed.global_mesh()

def make():
    model = nn.Sequential(nn.Linear(16, 64, backend, seed=0), nn.ReLU(), nn.Linear(64, 10, backend, seed=1))
    return model, optim.Adam(model.parameters(), lr=0.01)

def body(model, opt):
    def step(x, y):
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return step

def weights_only(p):  # a per-parameter rule: split the input dim of weights, replicate biases
    return P(None, "data") if len(p.shape) == 2 else None

grid = distributed.global_mesh({"data": 2, "model": -1})   # data parallel over 2, parameters split over 2
assert dict(grid.shape) == {"data": 2, "model": 2}
try:
    distributed.global_mesh({"data": 3})
except ValueError as e:
    assert "do not fit the 4 devices" in str(e), e
else:
    raise AssertionError("a mesh of 3 over 4 devices was accepted")
runs = {}
for label, kw in [("one", {}), ("replicated", dict(mesh=mesh)), ("sharded", dict(mesh=mesh, shard_params=True)),
                  ("rule", dict(mesh=mesh, shard_params=weights_only)), ("2d", dict(mesh=grid, shard_params="model"))]:
    model, opt = make()
    step = jtape.jit(body(model, opt), state=[model, opt], **kw)
    rng = np.random.default_rng(0)
    for i in range(10):
        x = tensor.from_numpy(rng.standard_normal((32, 16)).astype(np.float32), backend, requires_grad=False)
        y = tensor.from_numpy(rng.integers(0, 10, 32).astype(np.int32), backend)
        step(x, y)
    runs[label] = (model, opt, step, x, y)

expected = [p.numpy() for p in runs["one"][0].parameters()]
for label in ("replicated", "sharded", "rule", "2d"):
    got = [distributed.to_host(p.data) for p in runs[label][0].parameters()]
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got))
    assert worst <= 1e-5, (label, worst)
specs = [p.data.sharding.spec for p in runs["sharded"][0].parameters()]
assert specs == [P("data"), P("data"), P(None, "data"), P()], specs       # 10 does not split over 4
specs = [p.data.sharding.spec for p in runs["rule"][0].parameters()]
assert specs == [P(None, "data"), P(), P(None, "data"), P()], specs
specs = [p.data.sharding.spec for p in runs["2d"][0].parameters()]
assert specs == [P("model"), P("model"), P(None, "model"), P("model")], specs
mu = runs["sharded"][1].state[0].inner_state[0].mu     # group 0, inject_hyperparams, adam's scale_by_adam
assert [m.sharding.spec for m in mu] == [P("data"), P("data"), P(None, "data"), P()]
full = distributed.bytes_per_device(runs["replicated"][0], runs["replicated"][1])
part = distributed.bytes_per_device(runs["sharded"][0], runs["sharded"][1])
assert len(set(full.values())) == 1 and len(part) == 4
f, s = next(iter(full.values())), max(part.values())
assert f / 4 <= s <= 1.05 * f / 4, (f, s)
model, opt, step, x, y = runs["sharded"]
hlo = step.lower(x, y).compile().as_text()
counts = distributed.collectives(hlo)
assert counts["all-gather"] >= 3 and counts["all-reduce"] + counts["reduce-scatter"] >= 1, counts
assert distributed.collectives(runs["replicated"][2].lower(x, y).compile())["all-reduce"] >= 1

def fails(kw, error, text):
    m, o = make()
    try:
        jtape.jit(body(m, o), state=[m, o], **kw)(x, y)
    except error as e:
        assert text in str(e), e
    else:
        raise AssertionError(f"{kw} was accepted")

fails(dict(mesh=mesh, shard_params="model"), ValueError, "shard_params='model'; expected True, False, a callable")
fails(dict(mesh=mesh, shard_params=lambda p: P("data")), ShapeError,
      "splits dim 0 (size 10) of a parameter of shape (10, 64)")
fails(dict(mesh=mesh, shard_params=lambda p: P(None, None, "data")), ValueError, "of at most 2 entries")
fails(dict(mesh=mesh, shard_params=lambda p: "data"), ValueError, "expected None or a PartitionSpec")
fails(dict(mesh=mesh, shard_params=3), TypeError, "got shard_params of type int")
fails(dict(shard_params=True), ValueError, "shard_params without a mesh")
print(f"OK {f} bytes replicated, {s} sharded per device")
'''


@pytest.mark.slow
def test_sharded_parameters_on_four_devices_of_one_process():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, env=env,
                          timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK 20880 bytes replicated, 5328 sharded per device" in done.stdout, done.stdout


@pytest.mark.parametrize("shape, size, spec", [
    ((64, 16), 4, PartitionSpec("d")), ((10, 64), 4, PartitionSpec(None, "d")), ((10,), 4, PartitionSpec()),
    ((8, 8), 4, PartitionSpec("d")), ((3,), 4, PartitionSpec()), ((), 2, PartitionSpec()),
    ((64, 16), 1, PartitionSpec()), ((2, 6), 4, PartitionSpec()), ((4, 2), 4, PartitionSpec("d")),
])
def test_default_rule_splits_the_largest_dividing_dim(shape, size, spec):
    assert default_spec(shape, "d", size) == spec


def test_collectives_counts_the_ops_of_an_hlo_text():
    hlo = ("%all-gather = f32[64,16]{1,0} all-gather(%p), dimensions={0}\n"
           "%all-reduce.5 = (f32[], f32[16,64]{1,0}) all-reduce(%a, %b), to_apply=%add\n"
           "%ag-start = (f32[2], f32[4]) all-gather-start(%q)\n"
           "%x = f32[4] add(%all-reduce.5, %all-gather)\n"
           "%rs = f32[4]{0} reduce-scatter(%g), dimensions={0}\n")
    assert distributed.collectives(hlo) == {"all-gather": 2, "all-reduce": 1, "reduce-scatter": 1}


def _train(model, opt, backend, steps, start=0):
    """Eager steps ``start .. steps - 1``, each on its own batch."""
    for i in range(start, steps):
        rng = np.random.default_rng(i)
        x = tensor.from_numpy(rng.standard_normal((8, 6)).astype(np.float32), backend, requires_grad=False)
        y = tensor.from_numpy(rng.integers(0, 3, 8).astype(np.int32), backend)
        model(x).cross_entropy(y).backward()
        opt.step()
        opt.zero_grad()


def test_checkpoint_resumes_model_and_optimizer(tmp_path):
    backend = autodiff.new(JaxBackend("cpu"))

    def make():
        model = nn.Sequential(nn.Linear(6, 5, backend, seed=3), nn.ReLU(), nn.Linear(5, 3, backend, seed=4))
        return model, optim.Adam(model.parameters(), lr=0.05)

    straight, straight_opt = make()
    _train(straight, straight_opt, backend, 10)
    first, first_opt = make()
    _train(first, first_opt, backend, 4)
    distributed.save_checkpoint(tmp_path / "c.npz", first, first_opt, step=4)
    resumed, resumed_opt = make()
    assert distributed.load_checkpoint(tmp_path / "c.npz", resumed, resumed_opt) == 4
    assert resumed_opt.steps == 4
    _train(resumed, resumed_opt, backend, 10, start=4)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = optim.SGD(resumed.parameters(), lr=0.1, momentum=0.9)   # a different optimizer's state
    with pytest.raises(KeyError, match=r"missing \['0/hyperparams/momentum'.*unexpected \['0/hyperparams/b1'"):
        distributed.load_optimizer_state_dict(other, distributed.optimizer_state_dict(resumed_opt))
    state = distributed.optimizer_state_dict(resumed_opt)
    state["optim/state/0/inner_state/0/mu/0"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"0/inner_state/0/mu/0 has shape \(2, 2\); expected \(5, 6\)"):
        distributed.load_optimizer_state_dict(resumed_opt, state)


def test_bytes_per_device_of_one_device_state():
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Linear(6, 5, backend, seed=0)
    opt = optim.Adam(model.parameters(), lr=0.1)
    held = distributed.bytes_per_device(model, opt)
    # parameters, mu, nu (float32), Adam's int32 count, inject_hyperparams' count and lr, b1, b2, eps (float32)
    assert list(held.values()) == [3 * (30 + 5) * 4 + 4 + 4 + 4 * 4]
    with pytest.raises(TypeError, match="got int; expected Modules, Optimizers or Parameters"):
        distributed.bytes_per_device(3)
