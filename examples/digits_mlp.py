"""A multi-layer perceptron on scikit-learn's bundled 8×8 digits, trained with jtape's tape.

The same data, split, training loop and outputs as ``digits_cnn.py`` (whose ``run`` this
reuses); only the model differs: each 8×8 image is flattened to 64 numbers and fed through
two hidden ReLU layers. It reaches about 98% on the held-out 20%.

Run:  python examples/digits_mlp.py [--epochs 20] [--backend jax|numpy] [--device cpu|gpu] [--out runs/digits_mlp]
"""

from __future__ import annotations

from typing import Any

from digits_cnn import parse_args, run

from jtape import nn


def build_mlp(backend: Any, seed: int) -> nn.Module:
    """64 -> 128 -> 64 -> 10, ReLU between."""
    he = nn.init.kaiming_uniform
    return nn.Sequential(
        nn.Linear(64, 128, backend, seed=seed, weight_init=he), nn.ReLU(),
        nn.Linear(128, 64, backend, seed=seed + 1, weight_init=he), nn.ReLU(),
        nn.Linear(64, 10, backend, seed=seed + 2),
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__, epochs=20, lr=3e-3, out="runs/digits_mlp")
    return run(args, build_mlp, images=False, title="digits MLP")


if __name__ == "__main__":
    main()
