"""A/B in one process: deferred eager with the optimizer's update joined to the step's program
("joined", the default) against the same step with the update run as its own program ("apart"),
and jax.jit(value_and_grad) as the baseline. The three variants run interleaved, so the ratios
hold on a noisy machine. Also prints how long the first steps take (the compiles).

    python benchmarks/join_ab.py                       # MLP and MLP-born, 60 / 300 samples
    python benchmarks/join_ab.py --workloads MLP --samples 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import WORKLOADS, _jtape_model, _timed, inputs, jax_variants, sgd_step

from jtape import autodiff, optim, tensor
from jtape.backends import JaxBackend


def _variant(w, x, y, weights, join: bool):
    backend = autodiff.new(JaxBackend("cpu"))
    if not join:
        backend.deferred_update = lambda *args: None      # the optimizer then runs its update apart
    xt = tensor.from_numpy(x, backend, requires_grad=False)
    yt = tensor.from_numpy(y, backend)
    model = _jtape_model(w, backend, weights)
    opt = optim.SGD(model.parameters(), lr=0.01)
    return _timed(sgd_step(model, opt), (xt, yt), model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=["MLP", "MLP-born"])
    parser.add_argument("--samples", type=int, default=None, help="samples per variant (default 60 MLP, 300 others)")
    args = parser.parse_args()
    for name in args.workloads:
        w = WORKLOADS[name]
        x, y, weights = inputs(w)
        variants = {"joined": _variant(w, x, y, weights, True), "apart": _variant(w, x, y, weights, False),
                    "jax.jit": jax_variants(w, "cpu", weights, x, y)["jax.jit(value_and_grad)"]}
        first = {}
        for key, fn in variants.items():
            times = []
            for _ in range(5):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            first[key] = " ".join(f"{t:.2f}" for t in times)
        samples = args.samples or (60 if name in ("MLP", "MLP-big", "CNN", "CNN-big") else 300)
        times = {k: [] for k in variants}
        for _ in range(samples):
            for key, fn in variants.items():
                t = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t)
        base = float(np.median(times["jax.jit"]))
        ratios = "  ".join(f"{k} {np.median(v) / base:.3f}×" for k, v in times.items())
        print(f"{name}: {ratios}  (jax.jit {base * 1e3:.3f} ms, {samples} interleaved samples)")
        print("  first five steps, s: " + "; ".join(f"{k}: {v}" for k, v in first.items()))


if __name__ == "__main__":
    main()
