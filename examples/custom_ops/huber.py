"""A custom op: the Huber loss, with a hand-written backward rule.

    huber(pred, target) = mean_i h(pred_i - target_i),
    h(r) = r²/2            if |r| <= δ
         = δ (|r| - δ/2)   otherwise          (quadratic near 0, linear — robust — far out)

Written as in ``logsumexp.py``: an ``Operation`` with the derivation and a rule of Backend ops,
and a forward of Backend ops, joined by ``autodiff.custom_op``. ``main`` fits a line to data
with outliers using it, checks the gradient against jax, and runs ``check_operation``.

Run:  python examples/custom_ops/huber.py [--backend jax|numpy]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.ops import Operation, unbroadcast
from jtape.testing import check_operation


def _abs_and_sign(backend, r):
    """|r| and the sign of r (±1, with +1 at 0 not used: there |r| <= δ) from Backend ops."""
    zero = backend.full((), 0, r.dtype)
    positive = backend.greater(r, zero)
    return backend.where(positive, r, backend.mul_scalar(r, -1)), positive


class HuberLossOp(Operation):
    """out = (1/n) Σ_i h(r_i),  r = pred - target (broadcast, n elements),  h as in the module docstring.

    Derivation: h'(r) = r where |r| <= δ and δ·sign(r) beyond — r clipped to [-δ, δ] (both pieces
    meet with slope ±δ at |r| = δ: h is smooth there). ∂r/∂pred = 1, ∂r/∂target = -1, the mean
    divides by n, and g is a scalar, so with clip = where(|r| <= δ, r, ±δ):
        grad_pred = unbroadcast(g · clip / n, pred.shape)    grad_target = unbroadcast(-g · clip / n, target.shape)
    Saves: pred, target (r is recomputed), delta.
    """

    __slots__ = ("delta",)

    def __init__(self, out, pred, target, delta=1.0):
        super().__init__(out, pred, target)
        self.delta = float(delta)

    def backward(self, g, backend):
        pred, target = self.inputs()
        r = backend.sub(pred, target)
        abs_r, positive = _abs_and_sign(backend, r)
        inside = backend.lower_equal(abs_r, backend.full((), self.delta, r.dtype))
        edge = backend.where(positive, backend.full((), self.delta, r.dtype), backend.full((), -self.delta, r.dtype))
        slope = backend.mul(backend.div_scalar(backend.where(inside, r, edge), float(r.shape.size)), g)
        return [unbroadcast(slope, pred.shape, backend),
                unbroadcast(backend.mul_scalar(slope, -1), target.shape, backend)]


@autodiff.custom_op(HuberLossOp)
def huber_loss(backend, pred, target, delta=1.0):
    """mean of h(pred - target), from Backend ops (a 0-d tensor)."""
    r = backend.sub(pred, target)
    abs_r, _ = _abs_and_sign(backend, r)
    inside = backend.lower_equal(abs_r, backend.full((), delta, r.dtype))
    quadratic = backend.mul_scalar(backend.mul(r, r), 0.5)
    linear = backend.mul_scalar(backend.sub_scalar(abs_r, 0.5 * delta), delta)
    return backend.div_scalar(backend.sum(backend.where(inside, quadratic, linear)), float(r.shape.size))


def reference(pred, target, delta=1.0):
    """The same loss in jax.numpy, for the checks."""
    r = pred - target
    return jnp.mean(jnp.where(jnp.abs(r) <= delta, 0.5 * r * r, delta * (jnp.abs(r) - 0.5 * delta)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["jax", "numpy"], default="jax")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print
    inner = JaxBackend("cpu") if args.backend == "jax" else NumpyBackend()
    backend = autodiff.new(inner)
    rng = np.random.default_rng(0)

    # A line y = 2x - 1 with noise and a few wild outliers; Huber's linear tails limit their pull.
    xs = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    ys = (2 * xs - 1 + 0.05 * rng.standard_normal((64, 1))).astype(np.float32)
    ys[:4] += 30.0
    x, y = tensor.from_numpy(xs, backend, requires_grad=False), tensor.from_numpy(ys, backend, requires_grad=False)
    w, b = tensor.zeros((1, 1), backend), tensor.zeros((1,), backend)
    grad_error = 0.0
    for step in range(args.steps):
        loss = huber_loss(backend, x @ w + b, y, delta=1.0)
        loss.backward()
        if step == 0:       # the tape's gradient against jax.grad of the reference, at the start
            expected = jax.grad(lambda w_, b_: reference(xs @ w_ + b_, ys), argnums=(0, 1))(
                np.zeros((1, 1), np.float32), np.zeros((1,), np.float32))
            grad_error = max(float(np.max(np.abs(w.grad.numpy() - expected[0]))),
                             float(np.max(np.abs(b.grad.numpy() - expected[1]))))
        with backend.no_grad():     # a plain gradient step; the new w, b are fresh leaves
            w, b = (w - w.grad * 0.5).detach().requires_grad_(), (b - b.grad * 0.5).detach().requires_grad_()
    fit = (float(w.item()), float(b.item()))
    say(f"max |grad - jax.grad| at step 0: {grad_error:.3g};  fitted y = {fit[0]:.3f} x + {fit[1]:.3f} (true: 2x - 1)")

    pred, target = rng.standard_normal((5, 4)) * 2, rng.standard_normal((1, 4))
    report = check_operation(HuberLossOp, huber_loss.forward, pred, target, kwargs={"delta": 1.0}, backend=inner)
    say(report)
    return {"grad_error": grad_error, "fit": fit, "reports": [report]}


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)       # so check_operation also runs float64
    main()
