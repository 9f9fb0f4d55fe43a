"""Threads and determinism: recording state is per thread; eight threads training their own
models give exactly the serial results; a tape shared between threads records consistently and
differentiates correctly — or, when one thread's backward releases what another still builds
on, raises a clear error; CPU gradients are bitwise equal across processes with different
``PYTHONHASHSEED``."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from jtape import autodiff, nn, optim, tensor
from jtape.tensor.errors import TapeError

from ..conftest import make_inner

N_THREADS = 8


@pytest.fixture(autouse=True)
def _switch_often():
    """Make the interpreter switch threads every ~10 µs (default 5 ms), so they really interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def _run_threads(target, n=N_THREADS):
    """Run target(i) in n threads released together by a barrier; re-raise the first failure."""
    barrier = threading.Barrier(n)
    results, failures = [None] * n, []

    def body(i):
        try:
            barrier.wait(timeout=60)
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - reported to the main thread below
            failures.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if failures:
        raise failures[0]
    return results


def test_no_grad_is_per_thread_while_threads_record_on_one_tape(inner):
    backend = autodiff.new(inner)
    x = tensor.from_numpy(np.ones(3, np.float32), backend)

    def work(i):
        if i % 2:
            with backend.no_grad():
                for _ in range(50):
                    _ = x * 2.0
                return backend.tape().is_recording()
        for _ in range(50):
            _ = x * 2.0
        return backend.tape().is_recording()

    seen = _run_threads(work)
    assert seen == [i % 2 == 0 for i in range(N_THREADS)]
    assert backend.tape().num_ops() == 50 * (N_THREADS // 2)   # only the recording threads' ops


def _train(inner_name: str, seed: int, steps: int = 25) -> list[np.ndarray]:
    """A small MLP trained the README's way on its own AutodiffBackend; returns its parameters."""
    backend = autodiff.new(make_inner(inner_name))
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(6, 16, backend, seed=seed), nn.Tanh(), nn.Linear(16, 3, backend, seed=seed + 100))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    xs = rng.standard_normal((steps, 8, 6)).astype(np.float32)
    ys = rng.integers(0, 3, (steps, 8)).astype(np.int32)
    for step in range(steps):
        loss = loss_fn(model(tensor.from_numpy(xs[step], backend, requires_grad=False)),
                       tensor.from_numpy(ys[step], backend))
        loss.backward()
        opt.step()
        opt.zero_grad()
    return [p.numpy() for p in model.parameters()]


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
def test_eight_threads_training_their_own_models_match_the_serial_results_bitwise(inner_name):
    serial = [_train(inner_name, seed) for seed in range(N_THREADS)]
    threaded = _run_threads(lambda i: _train(inner_name, i))
    for seed, (a, b) in enumerate(zip(serial, threaded)):
        for pa, pb in zip(a, b):
            assert pa.dtype == pb.dtype and pa.tobytes() == pb.tobytes(), f"model {seed} differs"
    assert serial[0][0].tobytes() != serial[1][0].tobytes()   # the models really are different


def test_one_tape_shared_between_threads_records_consistently_and_differentiates_correctly(inner):
    backend = autodiff.new(inner)
    steps = 400
    xs = [tensor.from_numpy(np.full(4, 0.1 * (i + 1)), backend) for i in range(N_THREADS)]

    lockstep = threading.Barrier(N_THREADS)  # every 50 steps, so the threads surely interleave

    def forward(i):
        y = xs[i]
        for k in range(steps):
            if k % 50 == 0:
                lockstep.wait(timeout=60)
            y = (y * (1.0 + 0.001 * i)).sin() if k % 2 else y + xs[i]
        return y.sum()

    outs = _run_threads(forward)
    tape = backend.tape()
    ops = tape.operations()
    assert len(ops) == N_THREADS * (steps + steps // 2 + 1)    # every op of every thread, once
    position = {op.output(): p for p, op in enumerate(ops)}
    for p, op in enumerate(ops):                               # recording order is still topological
        for x in op.inputs():
            assert position.get(x, -1) < p
    owner = {x.raw(): i for i, x in enumerate(xs)}
    for op in ops:
        owner[op.output()] = owner[op.inputs()[0]]
    switches = sum(owner[a.output()] != owner[b.output()] for a, b in itertools.pairwise(ops))
    assert switches > 4 * N_THREADS, f"the threads hardly interleaved ({switches} switches): nothing was tested"
    # Each thread's gradient from the shared tape equals the one from a private tape ...
    grads = _run_threads(lambda i: autodiff.backward(outs[i], backend)[xs[i].raw()])  # concurrent walks
    for i in range(N_THREADS):
        alone = autodiff.new(make_inner("jax" if inner.name() == "jax" else "numpy"))
        x = tensor.from_numpy(np.full(4, 0.1 * (i + 1)), alone)
        y = x
        for k in range(steps):
            y = (y * (1.0 + 0.001 * i)).sin() if k % 2 else y + x
        y.sum().backward()
        np.testing.assert_array_equal(backend.to_numpy(grads[i]), x.grad.numpy())
    assert tape.num_ops() == len(ops)                          # walking does not change the tape


def test_a_backward_that_releases_another_threads_graph_makes_its_backward_raise(inner):
    """Thread A's Tensor.backward clears the shared tape while thread B is half-way through its
    forward pass: B's later backward raises instead of silently stopping at the released tensor."""
    backend = autodiff.new(inner)
    a = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    b = tensor.from_numpy(np.array([3.0, 4.0]), backend)
    half_done, released = threading.Event(), threading.Event()
    outcome = {}

    def thread_a():
        half_done.wait(30)
        (a * a).sum().backward()
        released.set()

    def thread_b():
        h = b * b
        half_done.set()
        released.wait(30)
        try:
            (h * 3.0).sum().backward()
            outcome["grad"] = b.grad
        except TapeError as e:
            outcome["error"] = str(e)

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 4.0])
    assert "grad" not in outcome and b.grad is None
    assert "history is gone" in outcome["error"] and "retain_graph=True" in outcome["error"]


_DETERMINISM = r'''
import hashlib, json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from jtape import autodiff, nn, tensor
from jtape.backends import JaxBackend, NumpyBackend

digests = {}
for name, inner in (("jax", JaxBackend("cpu")), ("numpy", NumpyBackend())):
    backend = autodiff.new(inner)
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((4, 2, 6, 6)).astype(np.float32), backend)
    k = tensor.from_numpy(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), backend)
    w = tensor.from_numpy(rng.standard_normal((12, 5)).astype(np.float32), backend)
    t = tensor.from_numpy(np.array([0, 4, 2, 1], np.int32), backend)
    h = x.conv2d(k, 1, 1).relu().max_pool2d(2).reshape(4, 27)
    pieces = h.chunk(3, 1)
    h12 = tensor.cat([pieces[2], pieces[0].tanh()], 1).sum_dim(1, True).expand(4, 12)
    logits = (h12 * 0.1) @ w + h.mean_dim(1, True)
    idx = tensor.from_numpy(np.array([[1, 0, 3], [2, 2, 4], [0, 1, 1], [4, 3, 2]], np.int32), backend)
    loss = logits.cross_entropy(t) + logits.gather(1, idx).sigmoid().sum() + logits.where(logits > 0.0, logits * 0.5).sum()
    grads = backend.tape().gradient(loss, {"x": x, "k": k, "w": w})
    digests[name] = {key: hashlib.sha256(g.numpy().tobytes()).hexdigest() for key, g in sorted(grads.items())}
print(json.dumps(digests, sort_keys=True))
'''


def test_cpu_gradients_are_bitwise_equal_across_processes_with_different_hash_seeds():
    runs = []
    for hash_seed in ("0", "12345", "987654321"):
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-c", _DETERMINISM], capture_output=True, text=True, env=env,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1] == runs[2]
    assert set(runs[0]) == {"jax", "numpy"} and all(len(d) == 3 for d in runs[0].values())
