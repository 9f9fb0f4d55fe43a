"""The five reference workloads of PERFORMANCE.md, each written three ways from the same
initial weights and data: with jtape (nn modules on an AutodiffBackend), in plain jax, and in
torch. A workload builds *variants*: zero-argument callables running one training step and
blocking until its results are ready.

    MLP      784-512-512-10, ReLU, softmax cross-entropy, batch 256, float32, SGD step
    MLP-born 784-128-10, batch 32 (Born's own MNIST example)
    MLP-big  784-4096-4096-10, batch 2048
    CNN      28×28×1, batch 64: conv3×3(1→16)+ReLU+maxpool2, conv3×3(16→32)+ReLU+maxpool2, linear→10
    CNN-big  32×32×3, batch 256: the same with 64 and 128 channels
    chain    10 small elementwise ops on (4, 4) + sum, gradients for 3 inputs (no update)

jtape runs each step three ways: "jtape eager" (the default: deferred, one cached program per
step), "jtape op-by-op" (``autodiff.new(JaxBackend(), defer=False)``: every op and rule its own
call, as in teaching and debugging modes) and "jtape compiled" (``jtape.jit``). The MLPs also run
"raw": the model written with tensor ops (``x @ W + b``, ``relu``, ``cross_entropy``) and the SGD
update by hand under ``no_grad`` — no ``nn``, no ``optim``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend

LR = 0.01


@dataclass
class Workload:
    name: str
    kind: str                       # "mlp", "cnn" or "chain"
    sizes: tuple                    # layer widths (mlp) or (in_channels, c1, c2, hw) (cnn)
    batch: int
    classes: int = 10
    params: list = field(default_factory=list)   # numpy initial weights, shared by all variants


WORKLOADS = {
    "MLP": Workload("MLP", "mlp", (784, 512, 512, 10), 256),
    "MLP-born": Workload("MLP-born", "mlp", (784, 128, 10), 32),
    "MLP-big": Workload("MLP-big", "mlp", (784, 4096, 4096, 10), 2048),
    "CNN": Workload("CNN", "cnn", (1, 16, 32, 28), 64),
    "CNN-big": Workload("CNN-big", "cnn", (3, 64, 128, 32), 256),
    "chain": Workload("chain", "chain", (4, 4), 1),
}


# -- shared data and weights ------------------------------------------------------------------
def _data(w: Workload, rng: np.random.Generator):
    if w.kind == "mlp":
        x = rng.standard_normal((w.batch, w.sizes[0])).astype(np.float32)
    else:
        cin, _, _, hw = w.sizes
        x = rng.standard_normal((w.batch, cin, hw, hw)).astype(np.float32)
    return x, rng.integers(0, w.classes, w.batch).astype(np.int32)


def _init(shape: tuple, fan_in: int, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _weights(w: Workload, rng: np.random.Generator) -> list[np.ndarray]:
    """[W1, b1, W2, b2, ...] with torch's layouts: Linear [out, in], Conv [Cout, Cin, 3, 3]."""
    if w.kind == "mlp":
        out = []
        for i, o in zip(w.sizes[:-1], w.sizes[1:]):
            out += [_init((o, i), i, rng), np.zeros(o, np.float32)]
        return out
    cin, c1, c2, hw = w.sizes
    flat = c2 * (hw // 4) ** 2
    return [_init((c1, cin, 3, 3), cin * 9, rng), np.zeros(c1, np.float32),
            _init((c2, c1, 3, 3), c1 * 9, rng), np.zeros(c2, np.float32),
            _init((w.classes, flat), flat, rng), np.zeros(w.classes, np.float32)]


# -- jtape ------------------------------------------------------------------------------------
def _jtape_model(w: Workload, backend: Any, weights: list[np.ndarray], nn: Any = nn) -> Any:
    """The workload's model with ``weights``; ``nn`` is the module of layers to build it from (another
    jtape's, for ``ab_revision.py``)."""
    if w.kind == "mlp":
        layers: list = []
        for k, (i, o) in enumerate(zip(w.sizes[:-1], w.sizes[1:])):
            layers.append(nn.Linear(i, o, backend, seed=0))
            if k < len(w.sizes) - 2:
                layers.append(nn.ReLU())
    else:
        cin, c1, c2, hw = w.sizes
        layers = [nn.Conv2D(cin, c1, 3, backend, padding=1, seed=0), nn.ReLU(), nn.MaxPool2D(2),
                  nn.Conv2D(c1, c2, 3, backend, padding=1, seed=0), nn.ReLU(), nn.MaxPool2D(2),
                  nn.Flatten(), nn.Linear(c2 * (hw // 4) ** 2, w.classes, backend, seed=0)]
    model = nn.Sequential(*layers)
    for p, value in zip(model.parameters(), weights):
        p.assign(backend.from_numpy(value))
    return model


MODES = {"eager": True, "op-by-op": False}       # variant name -> AutodiffBackend's defer=


def sgd_step(model: Any, opt: Any) -> Callable:
    """The training step every jtape variant times: forward, cross entropy, backward, update."""
    def step(xb, yb):
        loss = model(xb).cross_entropy(yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return step


def _timed(run: Callable, args: tuple, params: list) -> Callable[[], None]:
    def timed():
        loss = run(*args)
        jax.block_until_ready([loss.data] + [p.data for p in params])
    return timed


def jtape_variants(w: Workload, device: str, weights: list, x: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    if w.kind == "chain":
        return _jtape_chain(device, weights)
    out = {}
    for mode in ("eager", "op-by-op", "compiled"):
        backend = autodiff.new(JaxBackend(device), defer=MODES.get(mode, True))
        xt = tensor.from_numpy(x, backend, requires_grad=False)
        yt = tensor.from_numpy(y, backend)
        model = _jtape_model(w, backend, weights)
        opt = optim.SGD(model.parameters(), lr=LR)
        step = sgd_step(model, opt)
        run = jtape.jit(step, state=[model, opt]) if mode == "compiled" else step
        out[f"jtape {mode}"] = _timed(run, (xt, yt), model.parameters())
        if backend.is_deferred():
            out[f"_deferred jtape {mode}"] = backend._deferred      # its cached programs (peak memory)
        if mode == "compiled":
            out["_lower jtape compiled"] = lambda run=run, xt=xt, yt=yt: run.lower(xt, yt)
        elif w.kind == "mlp":
            out[f"jtape {mode} raw"] = _jtape_raw_mlp(backend, weights, xt, yt)
    return out


def _jtape_raw_mlp(backend: Any, weights: list, xt: Any, yt: Any, tensor: Any = tensor) -> Callable[[], None]:
    """The MLP with tensor ops only: W stored [in, out] so the forward is ``x @ W + b``; SGD by hand.
    ``tensor``: the module that makes the tensors (another jtape's, for ``ab_revision.py``)."""
    params = [tensor.from_numpy(np.ascontiguousarray(v.T) if v.ndim == 2 else v, backend) for v in weights]

    def step(xb, yb):
        h = xb
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            if k < len(params) - 2:
                h = h.relu()
        loss = h.cross_entropy(yb)
        loss.backward()
        with backend.no_grad():
            for p in params:
                p.assign((p - LR * p.grad).raw())      # (.raw() and requires_grad_(): so ab_revision.py can run
                p.requires_grad_()                     # this on trees whose assign took a RawTensor and kept its flag)
                p.grad = None
        return loss
    return _timed(step, (xt, yt), params)


def _chain_tape(a, b, c):
    h = a * b + c
    h = h.tanh() * a
    h = h.sin() + b
    h = h.exp() - c
    h = h * h
    h = h.sigmoid() / (b * b + 1.0)
    return h.sum()


def _chain_jnp(a, b, c):
    h = a * b + c
    h = jnp.tanh(h) * a
    h = jnp.sin(h) + b
    h = jnp.exp(h) - c
    h = h * h
    h = jax.nn.sigmoid(h) / (b * b + 1.0)
    return jnp.sum(h)


def chain_gradients(a, b, c):
    """The chain and the gradients of its three inputs (the tape is left as it is)."""
    loss = _chain_tape(a, b, c)
    return loss, a.backend.tape().gradient(loss, [a, b, c])


def _jtape_chain(device: str, weights: list) -> dict[str, Callable]:
    out = {}
    for mode, defer in MODES.items():
        backend = autodiff.new(JaxBackend(device), defer=defer)
        leaves = [tensor.from_numpy(v, backend) for v in weights]

        def eager(backend=backend, leaves=leaves):
            _loss, grads = chain_gradients(*leaves)
            backend.tape().clear()
            jax.block_until_ready([g.data for g in grads])
        out[f"jtape {mode}"] = eager
        if backend.is_deferred():
            out[f"_deferred jtape {mode}"] = backend._deferred

    compiled = jtape.jit(chain_gradients)
    backend = autodiff.new(JaxBackend(device))
    leaves = [tensor.from_numpy(v, backend) for v in weights]

    def run_compiled():
        _loss, grads = compiled(*leaves)
        jax.block_until_ready([g.data for g in grads])
    out["jtape compiled"] = run_compiled
    out["_lower jtape compiled"] = lambda: compiled.lower(*leaves)
    return out


# -- plain jax ----------------------------------------------------------------------------------
def _jax_forward(w: Workload, ps: list, x):
    if w.kind == "mlp":
        h = x
        n = len(ps) // 2
        for k in range(n):
            h = h @ ps[2 * k].T + ps[2 * k + 1]
            if k < n - 1:
                h = jax.nn.relu(h)
        return h
    h = x
    for k in range(2):
        h = lax.conv_general_dilated(h, ps[2 * k], (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + ps[2 * k + 1][None, :, None, None])
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = h.reshape(h.shape[0], -1)
    return h @ ps[4].T + ps[5]


def jax_variants(w: Workload, device: str, weights: list, x: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    dev = jax.devices(device)[0]
    if w.kind == "chain":
        vg = jax.jit(jax.value_and_grad(_chain_jnp, argnums=(0, 1, 2)))
        args = [jax.device_put(v, dev) for v in weights]
        return {"jax.jit(value_and_grad)": lambda: jax.block_until_ready(vg(*args)),
                "_lower jax.jit(value_and_grad)": lambda: vg.lower(*args)}

    def loss_fn(ps, xb, yb):
        logits = _jax_forward(w, ps, xb)
        picked = jnp.take_along_axis(logits, yb[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

    @jax.jit
    def step(ps, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(ps, xb, yb)
        return loss, [p - LR * g for p, g in zip(ps, grads)]

    state = {"ps": [jax.device_put(v, dev) for v in weights]}
    xb, yb = jax.device_put(x, dev), jax.device_put(y, dev)

    def run():
        loss, state["ps"] = step(state["ps"], xb, yb)
        jax.block_until_ready((loss, state["ps"]))
    return {"jax.jit(value_and_grad)": run, "_lower jax.jit(value_and_grad)": lambda: step.lower(state["ps"], xb, yb)}


# -- torch --------------------------------------------------------------------------------------
def torch_variants(w: Workload, device: str, weights: list, x: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    try:
        import torch
    except ImportError:
        return {}
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    if device == "gpu" and not torch.cuda.is_available():
        return {}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    F = torch.nn.functional
    if w.kind == "chain":
        ts = [torch.tensor(v, device=dev, requires_grad=True) for v in weights]

        def chain():
            a, b, c = ts
            h = a * b + c
            h = torch.tanh(h) * a
            h = torch.sin(h) + b
            h = torch.exp(h) - c
            h = h * h
            h = torch.sigmoid(h) / (b * b + 1.0)
            torch.autograd.grad(h.sum(), ts)
            sync()
        return {"torch eager": chain}
    ps = [torch.tensor(v, device=dev, requires_grad=True) for v in weights]
    xb, yb = torch.tensor(x, device=dev), torch.tensor(y, device=dev).long()
    opt = torch.optim.SGD(ps, lr=LR)

    def forward():
        if w.kind == "mlp":
            h, n = xb, len(ps) // 2
            for k in range(n):
                h = F.linear(h, ps[2 * k], ps[2 * k + 1])
                if k < n - 1:
                    h = F.relu(h)
            return h
        h = xb
        for k in range(2):
            h = F.max_pool2d(F.relu(F.conv2d(h, ps[2 * k], ps[2 * k + 1], padding=1)), 2)
        return F.linear(h.flatten(1), ps[4], ps[5])

    def run():
        loss = F.cross_entropy(forward(), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sync()
    return {"torch eager": run}


def inputs(w: Workload, seed: int = 0) -> tuple:
    """``(x, y, weights)`` of a workload (the chain has no batch: its three inputs are the weights)."""
    rng = np.random.default_rng(seed)
    if w.kind == "chain":
        return None, None, [rng.standard_normal(w.sizes).astype(np.float32) for _ in range(3)]
    x, y = _data(w, rng)
    return x, y, _weights(w, rng)


def build(name: str, device: str, seed: int = 0) -> dict[str, Callable]:
    w = WORKLOADS[name]
    x, y, weights = inputs(w, seed)
    variants: dict[str, Callable] = {}
    variants.update(jtape_variants(w, device, weights, x, y))
    variants.update(jax_variants(w, device, weights, x, y))
    variants.update(torch_variants(w, device, weights, x, y))
    return variants
