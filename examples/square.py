"""The seed's first example: y = x², dy/dx = 2x, computed by walking the tape.

Run:  python examples/square.py [--backend jax|numpy] [--device cpu|gpu|tpu]
"""

from __future__ import annotations

import argparse

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["jax", "numpy"], default="jax")
    parser.add_argument("--device", default="cpu", help="JaxBackend device: cpu, gpu or tpu")
    args = parser.parse_args(argv)

    inner = JaxBackend(args.device) if args.backend == "jax" else NumpyBackend()
    backend = autodiff.new(inner)                                   # the tape is recording
    x = tensor.from_slice([2.0], tensor.Shape((1,)), backend)
    y = x.mul(x)                                                    # y = x², one MulOp on the tape
    print("the tape after the forward pass:")
    print(backend.tape().summary())
    y.backward()                                                    # seed dy/dy = 1, walk in reverse
    print(f"y = {y.item()}, dy/dx = {x.grad.item()} (expected 2x = {2 * x.item()})")
    return x.grad.item()


if __name__ == "__main__":
    main()
