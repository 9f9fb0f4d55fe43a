"""The three ways a training step runs give the same numbers, and the deferred cache stays bounded.

A step written once with the public API (``nn`` modules, ``cross_entropy``, ``backward``, an optimizer)
runs

* **deferred** (the default on JaxBackend): ops recorded now, run at the flush as one cached program
  (from the fourth step on with the optimizer's update joined to it);
* **op by op** (``autodiff.new(JaxBackend(), defer=False)``): each op and each rule its own call;
* **compiled** (``jtape.jit(step, state=[model, opt])``): the whole step traced into one XLA program.

The same weights and batches go through each for 50 steps — an MLP and a CNN with Adam, the
examples' character transformer with SGD and dropout; losses and final parameters must agree to
1e-6 relative (float32; 1e-5 for the transformer, see ``_transformer_run``). The bound is relative
to each array's largest magnitude: the three modes round differently inside XLA (fused vs separate
kernels), and Adam's normalised steps make every parameter move by about ``lr`` per step, so a
mismatch anywhere shows up at that scale.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import jax
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.autodiff import deferred
from jtape.backends import JaxBackend

from ..conftest import TEST_DEVICE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEPS = 50
BATCH = 32
RTOL = 1e-6
TRANSFORMER_RTOL = 1e-5


def _digits(images: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    x = x[:, None] if images else x.reshape(len(x), -1)
    return x, d.target.astype(np.int32)


def _mlp(backend) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32, backend, seed=1), nn.ReLU(),
                         nn.Linear(32, 32, backend, seed=2), nn.ReLU(),
                         nn.Linear(32, 10, backend, seed=3))


def _cnn(backend) -> nn.Module:
    return nn.Sequential(nn.Conv2D(1, 4, 3, backend, padding=1, seed=1), nn.ReLU(), nn.MaxPool2D(2),
                         nn.Conv2D(4, 8, 3, backend, padding=1, seed=2), nn.ReLU(), nn.MaxPool2D(2),
                         nn.Flatten(), nn.Linear(8 * 2 * 2, 10, backend, seed=3))


def _train(mode: str, build, images: bool) -> tuple[list[float], list[np.ndarray], autodiff.AutodiffBackend]:
    """50 Adam steps in ``mode``; returns the losses, the final parameters and the backend."""
    backend = autodiff.new(JaxBackend(TEST_DEVICE), defer=(mode != "op by op"))
    model = build(backend)
    opt = optim.Adam(model.parameters(), lr=0.01)

    def step(xb, yb):
        loss = model(xb).cross_entropy(yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    run = jtape.jit(step, state=[model, opt]) if mode == "compiled" else step
    x, y = _digits(images)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(STEPS):
        idx = rng.choice(len(x), BATCH, replace=False)
        loss = run(tensor.from_numpy(x[idx], backend, requires_grad=False), tensor.from_numpy(y[idx], backend))
        losses.append(loss.item())
    return losses, [p.numpy() for p in model.parameters()], backend


def _transformer_run(mode: str, monkeypatch) -> tuple[list[float], list[np.ndarray], autodiff.AutodiffBackend]:
    """50 SGD steps (momentum 0.9) of a small examples/char_transformer.py model, dropout on (the same
    keys in each mode). SGD, not Adam: the keys' bias gets no gradient (softmax ignores a shift of
    every score), only rounding noise, which Adam's normalised steps would blow up to ``lr`` per step
    and each mode rounds differently — a comparison of noise. Even so, attention over 50 steps
    carries float32 rounding further than the MLP and CNN do: measured 1e-6 (deferred) and 3e-6
    (compiled) relative, where a wrong rule is off by percents; hence TRANSFORMER_RTOL."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("char_transformer")
    backend = autodiff.new(JaxBackend(TEST_DEVICE), defer=(mode != "op by op"))
    model = example.CharTransformer(vocab=20, block_size=8, d_model=16, heads=2, layers=1, p=0.1, backend=backend)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step, _eval, _logits = example.make_steps(model, opt, backend, compiled=(mode == "compiled"))
    rng = np.random.default_rng(0)
    text = (np.arange(400) * 7 % 20).astype(np.int32)        # each character predicts the next: it learns
    base = jax.random.key(0)
    losses = []
    for i in range(STEPS):
        ids, targets = example.batch(text, rng, 4, 8)
        loss = step(tensor.from_numpy(ids, backend), tensor.from_numpy(targets, backend), jax.random.fold_in(base, i))
        losses.append(loss.item())
    return losses, [p.numpy() for p in model.parameters()], backend


def _assert_close(got: np.ndarray, want: np.ndarray, what: str, rtol: float = RTOL) -> None:
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale
    assert err <= rtol, f"{what}: got a relative difference of {err:.3g}; expected <= {rtol}"


@pytest.mark.parametrize("net", ["mlp", pytest.param("cnn", marks=pytest.mark.slow),
                                 pytest.param("transformer", marks=pytest.mark.slow)])
def test_deferred_op_by_op_and_compiled_steps_agree(net, monkeypatch):
    if net == "transformer":
        results = {mode: _transformer_run(mode, monkeypatch) for mode in ("op by op", "deferred", "compiled")}
    else:
        build, images = (_mlp, False) if net == "mlp" else (_cnn, True)
        results = {mode: _train(mode, build, images) for mode in ("op by op", "deferred", "compiled")}
    rtol = TRANSFORMER_RTOL if net == "transformer" else RTOL
    ref_losses, ref_params, plain = results["op by op"]
    assert not plain.is_deferred()
    assert ref_losses[-1] < ref_losses[0]                   # it trains: the comparison is not of constants
    for mode in ("deferred", "compiled"):
        losses, params, _ = results[mode]
        _assert_close(np.asarray(losses), np.asarray(ref_losses), f"{net} {mode} losses", rtol)
        assert len(params) == len(ref_params)
        for k, (p, q) in enumerate(zip(params, ref_params)):
            _assert_close(p, q, f"{net} {mode} parameter {k}", rtol)
    # deferred really ran compiled programs (the first sight of a structure runs op by op), and the
    # optimizer's update joined the step's program
    cache = results["deferred"][2]._deferred
    assert cache.compiles >= 1
    assert any(key.spec[0] == "update" for key in cache.programs), "the update never joined the step's program"


def _step_on(backend, model, opt, n: int, rng: np.random.Generator) -> None:
    x = tensor.from_numpy(rng.standard_normal((n, 8)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 3, n).astype(np.int32), backend)
    loss = model(x).cross_entropy(y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    assert np.isfinite(loss.item())


def _small_model(backend):
    model = nn.Sequential(nn.Linear(8, 16, backend, seed=0), nn.ReLU(), nn.Linear(16, 3, backend, seed=1))
    return model, optim.Adam(model.parameters(), lr=1e-3)


def test_repeated_identical_steps_compile_one_program():
    backend = autodiff.new(JaxBackend(TEST_DEVICE))
    model, opt = _small_model(backend)
    rng = np.random.default_rng(0)
    cache = backend._deferred
    _step_on(backend, model, opt, 16, rng)
    assert cache.compiles == 0                  # first sight: op by op, nothing compiled
    _step_on(backend, model, opt, 16, rng)      # second sight: forward, walk and update compiled as one
    compiled, programs = cache.compiles, len(cache.programs)
    assert compiled == 1
    assert programs == 2          # the step's program alone is made too (compiled only if it ever runs alone)
    for _ in range(40):
        _step_on(backend, model, opt, 16, rng)
    assert cache.compiles == compiled, f"compiles: got {cache.compiles} after 40 identical steps; expected {compiled}"
    assert len(cache.programs) == programs
    assert len(cache.seen) == programs


def test_changing_shapes_keep_the_cache_bounded(monkeypatch):
    monkeypatch.setattr(deferred, "MAX_PROGRAMS", 2)
    monkeypatch.setattr(deferred, "MAX_SEEN", 3)
    backend = autodiff.new(JaxBackend(TEST_DEVICE))
    model, opt = _small_model(backend)
    rng = np.random.default_rng(0)
    cache = backend._deferred
    for n in range(1, 5):             # every batch size twice: each structure is seen, then compiled
        for _ in range(2):
            _step_on(backend, model, opt, n, rng)
            assert len(cache.programs) <= 2, f"programs: got {len(cache.programs)}; expected <= 2"
            assert len(cache.seen) <= 3, f"structures remembered: got {len(cache.seen)}; expected <= 3"
    assert cache.compiles >= 4          # the shapes did change: one compile per batch size at least
    assert len(cache.programs) == 2 and len(cache.seen) == 3          # full, and old entries were dropped
    before = cache.compiles
    _step_on(backend, model, opt, 4, rng)        # the most recent structure is still cached
    assert cache.compiles == before
