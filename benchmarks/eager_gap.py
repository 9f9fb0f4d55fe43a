"""Where an eager step's time goes beyond its program: the eager (deferred) step and the jtape.jit
step of a workload, interleaved; in the eager step every program jtape runs (``Jitted.__call__``) is
waited for and timed alone. Printed: the eager step, its programs, and the compiled step (medians, ms),
so eager − programs is the Python around the programs, and programs − compiled what the eager
program itself costs more than the compiled one.

    python benchmarks/eager_gap.py                       # CNN, 40 rounds
    python benchmarks/eager_gap.py --workload MLP-born --rounds 200
    python benchmarks/eager_gap.py --workload MLP --raw          # the update written by hand
    python benchmarks/eager_gap.py --workload MLP-born --pauses 0 0.2 1 5 20
        # the Python before the step's program, after sleeping that many ms before each step

(Absolute times are for the record; compare the three within one run.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import WORKLOADS, inputs, jtape_variants

from jtape.autodiff import jitted


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="CNN", choices=[k for k, w in WORKLOADS.items() if w.kind != "chain"])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--raw", action="store_true", help="the MLPs' step with tensor ops and an update written by hand")
    parser.add_argument("--pauses", type=float, nargs="+", help="ms to sleep before each step: time the Python "
                        "from the step's start to its program call after each pause instead")
    args = parser.parse_args(argv)
    w = WORKLOADS[args.workload]
    x, y, weights = inputs(w)
    variants = jtape_variants(w, "cpu", weights, x, y)
    eager, compiled = variants["jtape eager raw" if args.raw else "jtape eager"], variants["jtape compiled"]
    for _ in range(5):                      # first sight, compile, steady state
        eager()
        compiled()
    plain_call = jitted.Jitted.__call__
    if args.pauses:
        return pauses(eager, args.pauses, args.rounds, plain_call)
    programs: list[float] = []

    def timed_call(self, *a):
        start = time.perf_counter()
        out = jax.block_until_ready(plain_call(self, *a))
        programs.append(time.perf_counter() - start)
        return out

    eager_t, program_t, compiled_t = [], [], []
    try:
        for _ in range(args.rounds):
            jitted.Jitted.__call__ = timed_call
            programs.clear()
            start = time.perf_counter()
            eager()
            eager_t.append(time.perf_counter() - start)
            program_t.append(sum(programs))
            jitted.Jitted.__call__ = plain_call
            start = time.perf_counter()
            compiled()
            compiled_t.append(time.perf_counter() - start)
    finally:
        jitted.Jitted.__call__ = plain_call
    out = {"eager step ms": float(np.median(eager_t)) * 1e3, "its programs ms": float(np.median(program_t)) * 1e3,
           "programs per step": len(programs), "compiled step ms": float(np.median(compiled_t)) * 1e3}
    print(f"{args.workload}: eager step {out['eager step ms']:.3f} ms, of which {out['programs per step']} program(s) "
          f"{out['its programs ms']:.3f} ms; compiled step {out['compiled step ms']:.3f} ms ({args.rounds} rounds)")
    return out


def pauses(eager, pause_ms: list[float], rounds: int, plain_call) -> dict:
    """The Python from a step's start to its (first) program call, after sleeping before each step:
    how much slower the same Python runs after the thread was idle."""
    called: list[float] = []

    def marked_call(self, *a):
        called.append(time.perf_counter())
        return plain_call(self, *a)
    out = {}
    jitted.Jitted.__call__ = marked_call
    try:
        for ms in pause_ms:
            before = []
            for _ in range(rounds):
                time.sleep(ms / 1e3)
                called.clear()
                start = time.perf_counter()
                eager()
                before.append(called[0] - start)
            out[ms] = float(np.median(before)) * 1e6
            print(f"pause {ms:g} ms: Python before the program {out[ms]:.1f} µs ({rounds} rounds)")
    finally:
        jitted.Jitted.__call__ = plain_call
    return out


if __name__ == "__main__":
    main()
