"""Memory: ownership is acyclic, saved arrays are released by the documented policy, backward
twice follows a rule, and a training loop written the README's way stays flat for 1,000 steps.

Ownership: the tape owns its Operations, an Operation owns the tensors its rule needs, a
RawTensor owns its array — and nothing points back (a tensor does not know the op that made
it). So plain reference counting frees everything: the tests below run with ``gc.disable()``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref

import jax
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import TapeError


class _NoGC:
    def __enter__(self):
        gc.collect()
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


def _program(backend):
    """Every kind of rule state: saved inputs, saved outputs (exp, softmax), static values, fan-out."""
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((4, 3)).astype(np.float32), backend)
    w = tensor.from_numpy(rng.standard_normal((3, 5)).astype(np.float32), backend)
    targets = tensor.from_numpy(np.array([0, 4, 2, 1], np.int32), backend)
    h = (x @ w).tanh()
    z = h.exp().softmax(-1) * h + h.sum_dim(0, True)
    loss = z.cross_entropy(targets) + z.sum_dim(1).mean()
    return x, w, loss


def _weakrefs_to_intermediates(tape):
    """Weak references to every recorded op, every op's output, and the array each output holds
    (in deferred mode, reading the first value runs the pending ops: every output on the tape gets
    its array)."""
    refs = []
    for op in tape.operations():
        out = op.output()
        refs += [weakref.ref(op), weakref.ref(out), weakref.ref(out.value())]
    return refs


def _alive(refs) -> int:
    return sum(r() is not None for r in refs)


def test_tape_cleared_and_references_dropped_frees_everything_without_gc(inner):
    backend = autodiff.new(inner)
    with _NoGC():
        x, w, loss = _program(backend)
        refs = _weakrefs_to_intermediates(backend.tape())
        assert len(refs) >= 3 * 10 and _alive(refs) == len(refs)
        loss.backward()                      # clears the tape (the default policy)
        assert backend.tape().num_ops() == 0
        assert _alive(refs) == 2             # only what the user still holds: `loss` and its array
        del loss
        assert _alive(refs) == 0
        assert x.grad is not None and w.grad is not None  # the leaves and their gradients stay


def test_dropping_the_backend_without_backward_frees_the_graph_without_gc(inner):
    with _NoGC():
        backend = autodiff.new(inner)
        x, w, loss = _program(backend)
        refs = _weakrefs_to_intermediates(backend.tape()) + [weakref.ref(backend.tape())]
        del backend, loss, x, w
        assert _alive(refs) == 0


def test_saved_arrays_are_released_by_the_documented_policy(inner):
    backend = autodiff.new(inner)
    with _NoGC():
        # retain_graph=True keeps the tape (and what it saved) until clear().
        _, _, loss = _program(backend)
        refs = _weakrefs_to_intermediates(backend.tape())
        ops = refs[0::3]
        loss.backward(retain_graph=True)
        assert _alive(refs) == len(refs)
        backend.tape().clear()
        assert _alive(ops) == 0 and _alive(refs) == 2   # `loss` and its array: the user holds them
        del loss
        assert _alive(refs) == 0
        # autodiff.backward (Born's form) leaves the tape alone; its map is keyed by every tensor
        # the gradient reached, so those live as long as the map does.
        _, _, loss = _program(backend)
        refs = _weakrefs_to_intermediates(backend.tape())
        ops = refs[0::3]
        grads = autodiff.backward(loss, backend)
        del loss
        assert _alive(refs) == len(refs)
        backend.tape().clear()
        assert _alive(ops) == 0
        del grads
        assert _alive(refs) == 0


def test_a_deferred_graph_dropped_before_it_ran_is_freed_without_gc():
    """Deferred mode: pending ops hold their inputs, whose pending values point back at the program
    only weakly — dropping the backend frees the unrun graph by reference counting alone."""
    with _NoGC():
        backend = autodiff.new(JaxBackend("cpu"), defer=True)
        x, w, loss = _program(backend)
        assert loss.raw().data.__class__.__name__ == "Pending"
        refs = [weakref.ref(op.output()) for op in backend.tape().operations()] + [weakref.ref(backend.tape())]
        del backend, loss, x, w
        assert _alive(refs) == 0


def test_a_pending_tensor_kept_without_its_backend_still_has_its_value():
    backend = autodiff.new(JaxBackend("cpu"), defer=True)
    x = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    kept = (x * 3.0).raw()
    del backend, x                       # the program runs what is pending as it goes
    np.testing.assert_array_equal(np.asarray(kept.value()), [3.0, 6.0])


# -- backward twice ------------------------------------------------------------------------------------
def test_backward_twice_follows_a_rule_or_raises(backend):
    x = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    y = (x * x).sum()
    # Born's form: the tape is left alone, so a second call gives the same map.
    first = autodiff.backward(y, backend)
    second = autodiff.backward(y, backend)
    np.testing.assert_array_equal(backend.to_numpy(first[x.raw()]), backend.to_numpy(second[x.raw()]))
    # retain_graph=True: a second backward works and .grad accumulates.
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    # The default clears the tape: the same tensor again, or anything built on the released graph.
    with pytest.raises(TapeError, match="not produced by an op on this tape any more — an earlier backward released"):
        y.backward()
    with pytest.raises(TapeError, match="the gradient reached RawTensor.*history is gone"):
        (y * 2.0).backward()
    x.zero_grad()
    # Two losses sharing a graph: the first backward releases it for the second.
    h = x * x
    a, b = (h * 2.0).sum(), (h * 3.0).sum()
    a.backward()
    with pytest.raises(TapeError, match="released its graph"):
        b.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])  # the failed backward added nothing
    # detach() makes a released tensor a new leaf on purpose.
    d = y.detach().requires_grad_(True)
    (d * 2.0).backward()
    assert d.grad.item() == 2.0


# -- a training loop written the README's way ----------------------------------------------------------
_LOOP = """
import gc, json, os, sys
import jax
import numpy as np
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend, NumpyBackend

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

backend = autodiff.new(JaxBackend("cpu") if sys.argv[1] == "jax" else NumpyBackend())
rng = np.random.default_rng(0)
model = nn.Sequential(nn.Linear(16, 32, backend, seed=0), nn.ReLU(), nn.Linear(32, 4, backend, seed=1))
opt = optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.CrossEntropyLoss()
xs = rng.standard_normal((64, 16)).astype(np.float32)
ys = rng.integers(0, 4, 64).astype(np.int32)
samples = []
for step in range(1, 1001):
    i = (step * 8) % 64
    x = tensor.from_numpy(xs[i:i + 8], backend, requires_grad=False)
    y = tensor.from_numpy(ys[i:i + 8], backend)
    loss = loss_fn(model(x), y)
    loss.backward()                       # fills p.grad and clears the tape
    opt.step()
    opt.zero_grad()
    assert backend.tape().num_ops() == 0
    if step >= 200 and step % 100 == 0:   # after warm-up (compiles, caches, allocator pools)
        gc.collect()
        samples.append((len(jax.live_arrays()), len(gc.get_objects()), rss_mib()))
print(json.dumps({"samples": samples, "loss": float(loss.item())}))
"""


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
def test_1000_training_steps_keep_live_arrays_objects_and_rss_flat(inner_name, capsys):
    """Run in a fresh interpreter, so the numbers are the loop's alone."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _LOOP, inner_name], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    arrays, objects, rss = zip(*result["samples"])
    with capsys.disabled():
        print(f"\n[memory] {inner_name}: steps 200..1000: live jax arrays {min(arrays)}..{max(arrays)}, "
              f"gc objects {min(objects)}..{max(objects)}, RSS {rss[0]:.2f} -> {rss[-1]:.2f} MiB "
              f"(max growth {max(rss) - rss[0]:+.2f} MiB)")
    assert max(arrays) - min(arrays) <= 1, arrays
    assert max(objects) - min(objects) <= 100, objects
    assert max(rss) - rss[0] <= 3.0, rss
    assert result["loss"] < 1.0  # it did train


def test_the_memory_checks_above_can_fail():
    """A leak of one small array per step is visible in the live-array count the test watches."""
    backend = JaxBackend("cpu")
    kept = []
    counts = []
    for step in range(5):
        kept.append(backend.full((8,), float(step), "float32"))
        gc.collect()
        counts.append(len(jax.live_arrays()))
    assert counts[-1] - counts[0] == 4
