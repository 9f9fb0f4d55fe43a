"""The planted-bug harness: is the test suite strong enough to catch realistic mistakes?

Each mutation below plants one bug — the kind a person adding or editing an op makes — in a copy of
the repository, runs the tests that should notice it, and records whether they did. A mutation
the suite misses is a hole in the suite: the harness exits non-zero.

    python tools/mutations.py                 # every mutation (about 10-20 minutes on 2 cores)
    python tools/mutations.py --list
    python tools/mutations.py keyword-order max-pool-last-tie
    python tools/mutations.py --markdown docs/testing-mutations.md

Every mutation names the exact text it replaces; if the code moved on and the text is gone, the
mutation is reported as stale (also a failure: update it), never silently skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    why: str          # what real mistake it stands for
    file: str         # relative to the repository root
    old: str          # the exact text replaced (must occur exactly once)
    new: str
    tests: tuple      # pytest arguments selecting the tests that should fail


MUTATIONS = (
    Mutation("keyword-order", "keyword arguments bound in call order, not signature order",
             "jtape/tensor/registry.py",
             "        return tuple(bound.arguments[p.name] for p in self.params)",
             "        return tuple(args) + tuple(kwargs.values()) if kwargs else tuple(bound.arguments[p.name] "
             "for p in self.params)",
             ("tests/ops/test_keywords.py",)),
    Mutation("half-accumulation", "half-precision reductions accumulate in half precision (NumpyBackend)",
             "jtape/ops/precision.py",
             '''    return a.astype(np.float32) if a.dtype in HALF else a''',
             '''    return a''',
             ("tests/ops/test_long_axes.py", "-k", "numpy")),
    Mutation("matmul-inner-dim-1", "a shape check that lets an inner dim of 1 through",
             "jtape/ops/linalg.py",
             "    if sa[-1] != sb[-2]:",
             "    if sa[-1] != sb[-2] and 1 not in (sa[-1], sb[-2]):",
             ("tests/ops/test_shape_fuzz.py", "-k", "matmul")),
    Mutation("max-pool-last-tie", "max-pool's gradient routed to the last maximum of a window",
             "jtape/ops/pool_kernels.py",
             "    a, b = np.divmod(win.argmax(axis=-1), kw)",
             "    a, b = np.divmod(win.shape[-1] - 1 - win[..., ::-1].argmax(axis=-1), kw)",
             ("tests/ops/test_gradients.py", "-k", "max_pool2d and numpy")),
    Mutation("mul-rule-swapped", "MulOp's rule multiplies by the wrong input",
             "jtape/ops/elementwise.py",
             "        return [unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)]",
             "        return [unbroadcast(g * a, a.shape), unbroadcast(g * b, b.shape)]",
             ("tests/ops/test_gradients.py", "-k", "mul and float64 and numpy")),
    Mutation("div-rule-sign", "DivOp's rule for the divisor loses its minus sign",
             "jtape/ops/elementwise.py",
             "unbroadcast(-(g / b) * out, b.shape)]",
             "unbroadcast((g / b) * out, b.shape)]",
             ("tests/ops/test_gradients.py", "-k", "div- and float64 and numpy")),
    Mutation("unbroadcast-keeps-dim", "unbroadcast forgets the size-1 dims (sums only leading dims)",
             "jtape/ops/base.py",
             "        if size == 1 and g.shape[i] != 1:",
             "        if size == 1 and g.shape[i] != 1 and False:",
             ("tests/ops/test_gradients.py", "-k", "add and float64 and numpy")),
    Mutation("softmax-rule-dim", "SoftmaxOp's rule sums over the last dim whatever dim was used",
             "jtape/ops/unary.py",
             "        return [out * (g - (g * out).sum_dim(self.dim, True))]",
             "        return [out * (g - (g * out).sum_dim(-1, True))]",
             ("tests/ops/test_gradients.py", "-k", "softmax and float64 and numpy")),
    Mutation("cross-entropy-mean", "the cross-entropy rule divides by the number of classes, not the batch",
             "jtape/ops/loss.py",
             "        b = z.shape[0]",
             "        b = z.shape[1]",
             ("tests/ops/test_gradients.py", "-k", "cross_entropy and float64 and numpy")),
    Mutation("transpose-rule-perm", "TransposeOp's rule applies the permutation instead of its inverse",
             "jtape/ops/shape.py",
             "        inverse = tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))",
             "        inverse = self.axes",
             ("tests/ops/test_gradients.py", "-k", "transpose and float64 and numpy")),
    Mutation("sigmoid-rule", "SigmoidOp's rule uses out·(1 + out)",
             "jtape/ops/unary.py",
             "        return [g_out - g_out * out]",
             "        return [g_out + g_out * out]",
             ("tests/ops/test_gradients.py", "-k", "sigmoid and float64 and numpy")),
    Mutation("fan-in-overwrites", "the walk overwrites a gradient instead of adding a second use's share",
             "jtape/autodiff/tape.py",
             "                        grads[x] = gx if prev is None else rules.add(prev, gx)",
             "                        grads[x] = gx",
             ("tests/autodiff/test_tape.py", "tests/autodiff/test_born_faults.py")),
    Mutation("scatter-keeps-one", "gather's adjoint keeps one of several repeated indices instead of adding",
             "jtape/ops/indexing.py",
             "    np.add.at(out, tuple(coords), wide(src))",
             "    out[tuple(coords)] = wide(src)",
             ("tests/ops/test_gradients.py", "-k", "gather and numpy")),
    Mutation("uint8-iota", "the scatter kernel builds its position grid in the index's dtype (uint8 wraps)",
             "jtape/ops/indexing.py",
             "lax.broadcasted_iota(jnp.int32, index.shape, d)",
             "lax.broadcasted_iota(index.dtype, index.shape, d)",
             ("tests/ops/test_index_dtypes.py", "-k", "jax")),
    Mutation("half-mean-divisor", "a mean's rule divides in float16 (n > 65,504 becomes inf)",
             "jtape/ops/precision.py",
             "        if x.dtype in HALF:\n            return jnp_fn(x.astype(jnp.float32), scalar).astype(x.dtype)",
             "        if False:\n            return jnp_fn(x.astype(jnp.float32), scalar).astype(x.dtype)",
             ("tests/ops/test_reduction_sizes.py", "-k", "jax")),
    Mutation("conv-kernel-grad-stride", "the convolution's kernel gradient ignores the stride",
             "jtape/ops/conv.py",
             "conv2d_kernel_grad(x, g, k.shape, s, p, d, groups)]",
             "conv2d_kernel_grad(x, g, k.shape, 1, p, d, groups)]",
             ("tests/ops/test_gradients.py", "-k", "conv2d and float64 and numpy")),
)


def plant(m: Mutation, into: Path) -> bool:
    """Copy of the repository under ``into`` with ``m`` planted; False when its text is gone."""
    target = into / m.file
    text = target.read_text()
    if text.count(m.old) != 1:
        return False
    target.write_text(text.replace(m.old, m.new))
    return True


def run(m: Mutation, timeout: float) -> tuple[str, float, str]:
    """("caught" | "MISSED" | "stale" | "timeout", seconds, the tail of pytest's output)."""
    with tempfile.TemporaryDirectory(prefix=f"jtape-mutant-{m.name}-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "site", "runs", "__pycache__",
                                                                    ".cache", "*.egg-info", ".pytest_cache"))
        if not plant(m, copy):
            return "stale", 0.0, f"the text to replace is not in {m.file} exactly once"
        env = dict(os.environ, PYTHONPATH=str(copy), JAX_PLATFORMS="cpu")
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:nbmake",
                   "-o", "addopts=", *m.tests]
        start = time.monotonic()
        try:
            done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.monotonic() - start, ""
        seconds = time.monotonic() - start
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        if done.returncode == 1:          # tests ran and failed: the bug was caught
            return "caught", seconds, tail
        if done.returncode == 0:
            return "MISSED", seconds, tail
        return f"error (pytest exit {done.returncode})", seconds, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutation")
    parser.add_argument("--markdown", help="also write the results table to this file")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutations {sorted(unknown)}; see --list")
    if args.list:
        for m in chosen:
            print(f"{m.name:24} {m.why}")
        return 0
    rows = []
    for m in chosen:
        verdict, seconds, tail = run(m, args.timeout)
        rows.append((m, verdict, seconds))
        print(f"{verdict:8} {m.name:24} {seconds:6.1f} s   {m.why}", flush=True)
        if verdict != "caught" and tail:
            print("         " + tail.replace("\n", "\n         "))
    caught = sum(v == "caught" for _, v, _ in rows)
    print(f"\n{caught} of {len(rows)} planted bugs caught")
    if args.markdown:
        lines = ["| planted bug | what it stands for | tests run | result | seconds |", "|---|---|---|---|---|"]
        lines += [f"| `{m.name}` | {m.why} | `{' '.join(m.tests)}` | {v} | {s:.0f} |" for m, v, s in rows]
        Path(args.markdown).write_text("\n".join(lines) + f"\n\n{caught} of {len(rows)} caught.\n")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
