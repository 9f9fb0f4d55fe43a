"""A custom op: numerically stable log-sum-exp, with a hand-written backward rule.

    logsumexp(x)  = log Σ_k exp(x_k)  along one dim
                  = m + log Σ_k exp(x_k - m),   m = max_k x_k   (no exp ever overflows)

A custom op is two pieces, as every built-in op: an ``Operation`` subclass with the derivation
and the rule (written with Backend ops), and a forward written with Backend ops, joined by
``autodiff.custom_op``. On an AutodiffBackend the forward runs on the inner backend and the op is
recorded as *one* step on the tape, so its own rule — not the rules of the forward's pieces —
gives the gradient. ``main`` checks values and gradients against jax and runs
``jtape.testing.check_operation``.

Run:  python examples/custom_ops/logsumexp.py [--backend jax|numpy]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.ops import Operation
from jtape.testing import check_operation


class LogSumExpOp(Operation):
    """out = log Σ_k exp(x_k) along ``dim`` (kept as size 1 when ``keep_dim``).

    Derivation: ∂out/∂x_k = exp(x_k) / Σ_j exp(x_j) = exp(x_k - out) — the softmax of x along dim.
    Each x_k receives g (of its row) times that weight, with the reduced dim put back first:
        grad_x = g' · exp(x - out'),    g', out' = g, out unsqueezed at dim (unless keep_dim).
    exp(x - out) <= 1, so the rule is as stable as the forward.   Saves: x, out, dim, keep_dim.
    """

    __slots__ = ("dim", "keep_dim")

    def __init__(self, out, x, dim=-1, keep_dim=False):
        super().__init__(out, x)
        self.dim = dim + len(x.shape) if dim < 0 else dim
        self.keep_dim = keep_dim

    def backward(self, g, backend):
        (x,) = self.inputs()
        out = self.output()
        if not self.keep_dim:
            g, out = backend.unsqueeze(g, self.dim), backend.unsqueeze(out, self.dim)
        return [backend.mul(g, backend.exp(backend.sub(x, out)))]


@autodiff.custom_op(LogSumExpOp)
def logsumexp(backend, x, dim=-1, keep_dim=False):
    """log Σ exp(x) along ``dim``, shifted by the max (``amax``) so exp cannot overflow."""
    d = dim + len(x.shape) if dim < 0 else dim
    m = backend.amax(x, d, True)                                              # the max, dim kept
    total = backend.sum_dim(backend.exp(backend.sub(x, m)), d, True)
    out = backend.add(m, backend.log(total))
    return out if keep_dim else backend.squeeze(out, d)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["jax", "numpy"], default="jax")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print
    inner = JaxBackend("cpu") if args.backend == "jax" else NumpyBackend()
    backend = autodiff.new(inner)
    rng = np.random.default_rng(0)

    # Values far beyond exp's float32 range: the naive log(sum(exp(x))) overflows to inf.
    big = rng.standard_normal((3, 5)).astype(np.float32) * 4 + 1000
    x = tensor.from_numpy(big, backend)
    y = logsumexp(backend, x, dim=1)
    say(f"tape: {[op.name for op in backend.tape().operations()]}   (one op: the forward's pieces are not recorded)")
    value_error = float(np.max(np.abs(y.numpy() - np.asarray(jax.nn.logsumexp(big, axis=1)))))
    say(f"logsumexp of values near 1000: {y.numpy()}  (max |error| vs jax.nn.logsumexp: {value_error:.3g})")

    # The tape's gradient of a downstream loss against jax.grad of the same loss.
    w = rng.standard_normal(3).astype(np.float32)
    loss = (y * tensor.from_numpy(w, backend, requires_grad=False)).sum()
    loss.backward()
    expected = jax.grad(lambda a: jnp.sum(jax.nn.logsumexp(a, axis=1) * w))(big)
    grad_error = float(np.max(np.abs(x.grad.numpy() - np.asarray(expected))))
    say(f"max |dloss/dx - jax.grad|: {grad_error:.3g}")

    # The oracle check, in float32 (and float64 with JAX's x64 mode) plus finite differences.
    inputs = rng.standard_normal((4, 6))
    report = check_operation(LogSumExpOp, logsumexp.forward, inputs, kwargs={"dim": -1}, backend=inner)
    report_kept = check_operation(LogSumExpOp, logsumexp.forward, rng.standard_normal((2, 3, 4)),
                                  kwargs={"dim": 1, "keep_dim": True}, backend=inner)
    say(report)
    return {"value_error": value_error, "grad_error": grad_error, "reports": [report, report_kept],
            "num_ops": 1}


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)       # so check_operation also runs float64
    main()
