"""Linear regression from scratch: fit y = w·x + b by gradient descent, with the tape made visible.

No jtape.nn, no optimizer: two leaf tensors, a loss written with Tensor ops, ``loss.backward()``
to fill ``w.grad`` and ``b.grad``, and a hand-written update under ``no_grad`` (so the update
itself is not recorded). The first step prints every operation the forward pass put on the tape.

Run:  python examples/linear_regression.py [--steps 200] [--lr 0.1] [--backend jax|numpy]
"""

from __future__ import annotations

import argparse

import numpy as np

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend

TRUE_W, TRUE_B = 3.0, -2.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["jax", "numpy"], default="jax")
    parser.add_argument("--device", default="cpu", help="JaxBackend device: cpu, gpu or tpu")
    args = parser.parse_args(argv)

    backend = autodiff.new(JaxBackend(args.device) if args.backend == "jax" else NumpyBackend())
    rng = np.random.default_rng(args.seed)
    xs = rng.uniform(-1, 1, (100, 1))
    ys = TRUE_W * xs + TRUE_B + 0.1 * rng.standard_normal((100, 1))
    x = tensor.from_numpy(xs, backend, "float32", requires_grad=False)   # data: constants, no gradient
    y = tensor.from_numpy(ys, backend, "float32", requires_grad=False)

    w = tensor.zeros((1,), backend)          # leaves: no recorded op produces them
    b = tensor.zeros((1,), backend)
    tape_lines: list[str] = []
    for step in range(args.steps):
        pred = x * w + b                     # MulOp, AddOp: [100, 1] * [1] broadcasts
        diff = pred - y                      # SubOp
        loss = (diff * diff).mean()          # MulOp, MeanDimOp
        if step == 0:
            tape_lines = [repr(op) for op in backend.tape().operations()]
            print(f"the tape after one forward pass ({backend.tape().num_ops()} ops):")
            for line in tape_lines:
                print(f"  {line}")
        loss.backward()                      # walks the tape in reverse; fills w.grad, b.grad; clears it
        if step == 0:
            print(f"dloss/dw = {w.grad.item():.4f}, dloss/db = {b.grad.item():.4f}")
        with backend.no_grad():              # the update is not part of the model: don't record it
            w = w - args.lr * w.grad         # made under no_grad: a constant (the old w and its .grad are dropped)
            b = b - args.lr * b.grad
        w.requires_grad_()                   # ... so mark the new values as leaves that want gradients
        b.requires_grad_()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.5f}  w {w.item():+.4f}  b {b.item():+.4f}")
    print(f"learned w = {w.item():.3f}, b = {b.item():.3f} (data made with w = {TRUE_W}, b = {TRUE_B})")
    return {"w": w.item(), "b": b.item(), "loss": loss.item(), "tape": tape_lines}


if __name__ == "__main__":
    main()
