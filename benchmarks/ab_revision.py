"""A/B against an older revision, in one process: the same training step on the jtape of the work
tree ("new") and on the jtape of a git revision ("old", extracted with ``git archive`` and imported
under another name), interleaved round by round with jax.jit(value_and_grad) as the baseline. On a
shared, noisy machine this is what can show a change of a few percent.

    python benchmarks/ab_revision.py ec8bd1f                         # MLP-born, MLP, chain; eager and compiled
    python benchmarks/ab_revision.py HEAD~3 --workloads MLP-born --modes eager --rounds 600
    python benchmarks/ab_revision.py HEAD~3 --workloads MLP-born MLP --modes raw   # the update written by hand

Printed per workload and mode: old and new as medians of the per-round ratios to jax.jit, and
new/old. (The old revision must have the same public API for the step: ``autodiff.new``, ``nn``,
``optim.SGD``, ``jtape.jit``.)
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import WORKLOADS, _jtape_model, _jtape_raw_mlp, _timed, chain_gradients, inputs, jax_variants, sgd_step

ROOT = Path(__file__).resolve().parent.parent


def extract(revision: str, into: Path) -> str:
    """The package of ``revision`` under ``into/jtape_old``; returns the import name."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "jtape"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "jtape").rename(into / "jtape_old")
    sys.path.insert(0, str(into))
    return "jtape_old"


def chain_of(pkg: str, weights: list, mode: str):
    """The chain workload (10 small ops, gradients of 3 inputs) on package ``pkg``, blocking."""
    J = importlib.import_module(pkg)
    autodiff, tensor = importlib.import_module(pkg + ".autodiff"), importlib.import_module(pkg + ".tensor")
    backend = autodiff.new(importlib.import_module(pkg + ".backends").JaxBackend("cpu"))
    leaves = [tensor.from_numpy(v, backend) for v in weights]
    run = J.jit(chain_gradients) if mode == "compiled" else chain_gradients

    def step():
        _, grads = run(*leaves)
        backend.tape().clear()
        jax.block_until_ready([g.data for g in grads])
    return step


def step_of(pkg: str, w, x, y, weights, mode: str):
    """An SGD training step of workload ``w`` on package ``pkg`` (eager, jtape.jit, or — ``raw``, MLPs —
    eager with tensor ops and the update written by hand), blocking."""
    if w.kind == "chain":
        return chain_of(pkg, weights, mode)
    J = importlib.import_module(pkg)
    autodiff, nn = importlib.import_module(pkg + ".autodiff"), importlib.import_module(pkg + ".nn")
    optim, tensor = importlib.import_module(pkg + ".optim"), importlib.import_module(pkg + ".tensor")
    backend = autodiff.new(importlib.import_module(pkg + ".backends").JaxBackend("cpu"))
    xt, yt = tensor.from_numpy(x, backend, requires_grad=False), tensor.from_numpy(y, backend)
    if mode == "raw":
        return _jtape_raw_mlp(backend, weights, xt, yt, tensor)
    model = _jtape_model(w, backend, weights, nn)
    opt = optim.SGD(model.parameters(), lr=0.01)
    train = sgd_step(model, opt)
    run = J.jit(train, state=[model, opt]) if mode == "compiled" else train
    return _timed(run, (xt, yt), model.parameters())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", help="the git revision to compare with (e.g. a commit id, HEAD~2)")
    parser.add_argument("--workloads", nargs="+", default=["MLP-born", "MLP", "chain"],
                        choices=list(WORKLOADS))
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled", "raw"],
                        help="raw: the MLPs with tensor ops and an update written by hand (not for chain)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds (default 600; MLP 150; CNN, MLP-big, CNN-big 40)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old = extract(args.revision, Path(tmp))
        for name in args.workloads:
            w = WORKLOADS[name]
            x, y, weights = inputs(w)
            for mode in args.modes:
                if mode == "raw" and w.kind == "chain":
                    continue
                variants = {"old": step_of(old, w, x, y, weights, mode),
                            "new": step_of("jtape", w, x, y, weights, mode),
                            "jax": jax_variants(w, "cpu", weights, x, y)["jax.jit(value_and_grad)"]}
                for _ in range(5):
                    for fn in variants.values():
                        fn()
                times: dict = {k: [] for k in variants}
                for _ in range(args.rounds or {"MLP": 150, "MLP-born": 600, "chain": 600}.get(name, 40)):
                    for k, fn in variants.items():
                        start = time.perf_counter()
                        fn()
                        times[k].append(time.perf_counter() - start)
                ratio = {k: np.array(v) / np.array(times["jax"]) for k, v in times.items()}
                print(f"{name} {mode}: old {np.median(ratio['old']):.3f}× jax.jit, new {np.median(ratio['new']):.3f}× "
                      f"jax.jit, new/old {np.median(np.array(times['new']) / np.array(times['old'])):.3f} "
                      f"(jax.jit step {np.median(times['jax']) * 1e3:.3f} ms, {len(times['jax'])} rounds)")


if __name__ == "__main__":
    main()
