"""A hand-written training step whose learning rate changes every step, against the same step with a
constant rate, eager (deferred) on the public API, steps interleaved in one process:

    for p in model.parameters(): p -= lr * p.grad        (under jtape.no_grad)

Deferred programs take Python numbers as arguments, so both steps should compile once and cost the
same (ratio ≈ 1). While scalars were part of a program's structure, the changing step was a new
structure every time and ran op by op (docs/performance.md, "Fifth pass").

    python benchmarks/changing_scalars.py                 # MLP 784-128-10, batch 32
    python benchmarks/changing_scalars.py --rounds 60 --hidden 512 --batch 256

Before/after: run it on an older tree too (``git worktree add /tmp/old REV`` and
``PYTHONPATH=/tmp/old python benchmarks/changing_scalars.py``).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jtape
from jtape import autodiff, nn, tensor
from jtape.backends import JaxBackend

INPLACE = hasattr(jtape.Tensor, "__isub__")


def _jtape_step(x_np, y_np, hidden: int, changing: bool):
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Sequential(nn.Linear(x_np.shape[1], hidden, backend, seed=0), nn.ReLU(),
                          nn.Linear(hidden, 10, backend, seed=1))
    params = model.parameters()
    x = tensor.from_numpy(x_np, backend, requires_grad=False)
    y = tensor.from_numpy(y_np, backend)
    state = {"i": 0}

    def step():
        i = state["i"] = state["i"] + 1
        lr = 0.05 * 0.999 ** i if changing else 0.05
        loss = model(x).cross_entropy(y)
        loss.backward()
        with jtape.no_grad():
            for p in params:
                if INPLACE:
                    p -= lr * p.grad
                else:                    # a revision before in-place operators: the same update
                    new = (p - p.grad * lr).raw()
                    new.requires_grad = True
                    p.assign(new)
                p.zero_grad()
        return loss.item()
    return step, backend


def _jax_step(x_np, y_np, hidden: int):
    rng = np.random.default_rng(0)
    ws = [jnp.asarray(rng.standard_normal(s).astype(np.float32) * 0.05)
          for s in ((hidden, x_np.shape[1]), (hidden,), (10, hidden), (10,))]

    def loss_fn(ws, x, y):
        h = jax.nn.relu(x @ ws[0].T + ws[1])
        logits = h @ ws[2].T + ws[3]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    @jax.jit
    def update(ws, x, y, lr):
        loss, gs = jax.value_and_grad(loss_fn)(ws, x, y)
        return [w - lr * g for w, g in zip(ws, gs)], loss
    x, y, state = jnp.asarray(x_np), jnp.asarray(y_np), {"ws": ws, "i": 0}

    def step():
        state["i"] += 1
        state["ws"], loss = update(state["ws"], x, y, 0.05 * 0.999 ** state["i"])
        return float(loss)
    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40, help="rounds of 10 steps of each variant")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, args.batch).astype(np.int32)
    constant, _ = _jtape_step(x, y, args.hidden, changing=False)
    changing, backend = _jtape_step(x, y, args.hidden, changing=True)
    variants = {"jtape, constant lr": constant, "jtape, changing lr": changing,
                "jax.jit(value_and_grad), changing lr": _jax_step(x, y, args.hidden)}
    for fn in variants.values():            # first sight, compile
        for _ in range(5):
            fn()
    times: dict = {k: [] for k in variants}
    for _ in range(args.rounds):
        for k, fn in variants.items():
            t = time.perf_counter()
            for _ in range(10):
                fn()
            times[k].append((time.perf_counter() - t) / 10)
    med = {k: float(np.median(v)) for k, v in times.items()}
    base = med["jax.jit(value_and_grad), changing lr"]
    for k, v in med.items():
        print(f"{k:40s} {v / base:6.3f}× jax.jit")
    print(f"changing / constant: {med['jtape, changing lr'] / med['jtape, constant lr']:.3f}; "
          f"programs compiled by the changing step: {backend._deferred.compiles}")


if __name__ == "__main__":
    main()
