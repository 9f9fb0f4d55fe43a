"""Data-parallel compiled steps: four simulated CPU devices give the single-device parameters.

jax fixes its device count when it starts, so each check runs in a fresh interpreter with
XLA_FLAGS=--xla_force_host_platform_device_count=4.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import numpy as np, jax
from jax.sharding import Mesh
import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend

assert len(jax.devices()) == 4, jax.devices()
backend = autodiff.new(JaxBackend("cpu"))

def make():
    model = nn.Sequential(nn.Linear(64, 32, backend, seed=0), nn.ReLU(), nn.Linear(32, 10, backend, seed=1))
    return model, optim.Adam(model.parameters(), lr=0.01)

def body(model, opt):
    def step(x, y):
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return step

m1, o1 = make()
m4, o4 = make()
single = jtape.jit(body(m1, o1), state=[m1, o1])
mesh = Mesh(np.array(jax.devices()), ("data",))
four = jtape.jit(body(m4, o4), state=[m4, o4], mesh=mesh)
rng = np.random.default_rng(0)
for step in range(20):
    x = tensor.from_numpy(rng.standard_normal((32, 64)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 10, 32).astype(np.int32), backend)
    l1, l4 = single(x, y).item(), four(x, y).item()
    assert abs(l1 - l4) <= 1e-5 * max(1.0, abs(l1)), (step, l1, l4)
worst = 0.0
for p, q in zip(m1.parameters(), m4.parameters()):
    assert len(q.data.sharding.device_set) == 4 and q.data.sharding.is_fully_replicated
    scale = max(1.0, float(np.max(np.abs(p.numpy()))))
    worst = max(worst, float(np.max(np.abs(p.numpy() - q.numpy()))) / scale)
assert worst <= 1e-5, worst
hlo = four.lower(x, y).compile().as_text()
assert "all-reduce" in hlo
try:
    four(tensor.from_numpy(np.zeros((30, 64), np.float32), backend), y)
except ValueError as e:
    assert "does not split evenly over the 4 devices" in str(e), e
else:
    raise AssertionError("a batch of 30 on 4 devices was accepted")
try:
    jtape.jit(body(m4, o4), state=[m4, o4], mesh=mesh, data_axis="model")
except ValueError as e:
    assert "data_axis='model'" in str(e), e
else:
    raise AssertionError("an unknown mesh axis was accepted")
print(f"OK worst relative parameter difference {worst:.2e}")
'''


def _run(code: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)


def test_four_devices_give_the_single_device_parameters():
    done = _run(SCRIPT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK worst relative parameter difference" in done.stdout


def test_example_runs_data_parallel():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "data_parallel.py"), "--simulate", "4",
                           "--steps", "60"], capture_output=True, text=True, timeout=240, cwd=ROOT,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 device(s)" in done.stdout and "held-out accuracy" in done.stdout
    accuracy = float(done.stdout.split("held-out accuracy ")[1].split(";")[0])
    assert accuracy > 0.85, done.stdout
