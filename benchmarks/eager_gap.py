"""Where an eager step's time goes beyond its program: the eager (deferred) step and the jtape.jit
step of a workload, interleaved; in the eager step every program jtape runs (``Jitted.__call__``) is
waited for and timed alone. Printed: the eager step, its programs, and the compiled step (medians, ms),
so eager − programs is the Python around the programs, and programs − compiled what the eager
program itself costs more than the compiled one.

    python benchmarks/eager_gap.py                       # CNN, 40 rounds
    python benchmarks/eager_gap.py --workload MLP-born --rounds 200
    python benchmarks/eager_gap.py --workload MLP --raw          # the update written by hand

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
    args = parser.parse_args(argv)
    w = WORKLOADS[args.workload]
    x, y, weights = inputs(w)
    variants = jtape_variants(w, "cpu", weights, x, y)
    eager, compiled = variants["jtape eager raw" if args.raw else "jtape eager"], variants["jtape compiled"]
    for _ in range(5):                      # first sight, compile, steady state
        eager()
        compiled()
    plain_call = jitted.Jitted.__call__
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


if __name__ == "__main__":
    main()
