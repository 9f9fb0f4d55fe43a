"""``MixedPrecision``: train in bfloat16 or float16, keep float32 master weights and optimizer state.

    opt = optim.MixedPrecision(model, lambda params: optim.Adam(params, lr=1e-3), compute_dtype="float16")
    logits = model(x.to("float16"))                     # forward (and so backward) in float16
    loss = loss_fn(logits.to("float32"), y)             # the loss in float32
    opt.scale_loss(loss).backward()                     # float16: scaled so small gradients survive
    opt.step(); opt.zero_grad()

What it does:

* At construction every Parameter gets a **float32 master copy**, and the model's own Parameters
  are cast to ``compute_dtype`` (``Tensor.set_``). The optimizer is made **on the masters**
  (``make_optimizer(masters)``), so its optax state — Adam's moments — is float32 too.
* The forward and backward run on the model's compute-dtype Parameters; their gradients come
  back in that dtype.
* ``step()`` takes those gradients, casts them to float32 and divides by the loss scale, runs the
  optax update on the masters (in float32), and gives the model's Parameters the new masters cast
  to ``compute_dtype`` — one jitted function, also inside ``jtape.jit``.
* **Loss scaling** (``loss_scale="auto"``: dynamic for float16, none for bfloat16, whose range is
  float32's). float16's smallest normal number is 6e-5, so small gradients would flush to zero;
  ``scale_loss`` multiplies the loss by S (initially 2**15) so every gradient is S times larger.
  A step whose gradients hold an inf or nan is **skipped** (masters and optax state unchanged) and
  S is halved; after ``growth_interval`` finite steps in a row S doubles. This is the dynamic
  scaling of PyTorch's ``GradScaler`` and JAX's ``jmp``, written with ``jnp.where`` so it runs
  compiled. ``loss_scale=`` a number fixes S; ``None`` turns scaling off.

Buffers (running statistics) keep their dtype. Under ``jtape.jit`` pass it as state
(``state=[model, opt]``): masters, optax state and loss scale are carried like an optimizer's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ..nn.module import Module, Parameter
from ..tensor.dtype import DataType
from ..tensor.errors import ArgumentError, DTypeError
from ..tensor.interop import asarray, values_on
from ..tensor.tensor import Tensor
from .optimizer import Optimizer


def _step(transform: Any, scaled: bool, dynamic: bool, growth_interval: int, compute: Any, masters: list,
          grads: list, state: Any, scale_state: Any) -> tuple:
    """One mixed-precision update on arrays (see the module docstring)."""
    scale, good = scale_state
    g32 = [g.astype(jnp.float32) / scale for g in grads]
    updates, new_state = transform.update(g32, state, masters)
    new_masters = optax.apply_updates(masters, updates)
    if scaled:          # an inf or nan gradient: skip the step, keep masters and optax state
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in g32]))
        new_masters, new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old),
                                                        (new_masters, new_state), (masters, state))
        if dynamic:
            good = jnp.where(finite, good + 1, 0)
            grow = good >= growth_interval
            scale = jnp.where(finite, jnp.where(grow, scale * 2, scale), jnp.maximum(scale / 2, 1.0))
            good = jnp.where(grow, 0, good)
    new_masters = [m.astype(jnp.float32) for m in new_masters]
    return new_masters, new_state, (scale, good), [m.astype(compute) for m in new_masters]


class MixedPrecision:
    """Mixed-precision training of ``model`` (a Module, or an iterable of Parameters): compute in
    ``compute_dtype`` (``"bfloat16"`` or ``"float16"``), keep float32 master weights and the optimizer
    ``make_optimizer(masters)`` (e.g. ``lambda ps: optim.Adam(ps, lr=1e-3)``) on them. See the module
    docstring for the step and the loss scaling (``loss_scale``: ``"auto"``, ``"dynamic"``, a number or None)."""

    def __init__(self, model: Module | Iterable[Parameter], make_optimizer: Callable[[list[Parameter]], Optimizer],
                 *, compute_dtype: DataType | str = "bfloat16", loss_scale: str | float | None = "auto",
                 init_scale: float = 2.0 ** 15, growth_interval: int = 2000):
        params = model.parameters() if isinstance(model, Module) else list(model)
        compute = DataType.of(compute_dtype)
        if compute not in (DataType.BFLOAT16, DataType.FLOAT16):
            raise DTypeError(f"MixedPrecision: got compute_dtype {compute.value}; expected bfloat16 or float16")
        if not params or not all(isinstance(p, Parameter) for p in params):
            raise ArgumentError(f"MixedPrecision: got {len(params)} parameters ({sorted({type(p).__name__ for p in params})}"
                                f"); expected a Module or a non-empty list of Parameters")
        if loss_scale == "auto":
            loss_scale = "dynamic" if compute is DataType.FLOAT16 else None
        if not (loss_scale is None or loss_scale == "dynamic" or (isinstance(loss_scale, (int, float))
                                                                 and loss_scale > 0)):
            raise ArgumentError(f"MixedPrecision: got loss_scale={loss_scale!r}; expected 'auto', 'dynamic', a "
                                f"positive number or None")
        if growth_interval < 1:
            raise ArgumentError(f"MixedPrecision: got growth_interval={growth_interval}; expected >= 1")
        self.compute_dtype = compute
        self.compute_params = params
        self.masters = [Parameter(values_on(p, p.backend, DataType.FLOAT32)) for p in params]
        self.optimizer = make_optimizer(self.masters)
        if not isinstance(self.optimizer, Optimizer) or len(self.optimizer.params) != len(self.masters) or any(
                a is not b for a, b in zip(self.optimizer.params, self.masters)):
            raise ArgumentError(f"MixedPrecision: make_optimizer returned {self.optimizer!r}; expected an Optimizer on "
                                f"exactly the parameters it was given (the float32 masters)")
        for p in params:       # only now, when nothing can fail: the model computes in compute_dtype
            p.set_(values_on(p, p.backend, compute))
        self.dynamic = loss_scale == "dynamic"
        self.scaled = loss_scale is not None
        self.growth_interval = int(growth_interval)
        start = 1.0 if loss_scale is None else init_scale if self.dynamic else float(loss_scale)
        self.scale_state = self.optimizer._on_host(lambda: (jnp.asarray(start, jnp.float32), jnp.asarray(0, jnp.int32)))
        self._compile()

    def _compile(self) -> None:
        self._update = jax.jit(functools.partial(_step, self.optimizer.transform, self.scaled, self.dynamic,
                                                 self.growth_interval, self.compute_dtype.jax))

    # -- what jtape.jit carries (it treats this as an optimizer: params, transform, state) -------------
    @property
    def params(self) -> list[Parameter]:
        """The masters and the model's compute-dtype Parameters: everything a step changes."""
        return self.masters + self.compute_params

    @property
    def transform(self) -> optax.GradientTransformation:
        return self.optimizer.transform

    @property
    def state(self) -> tuple:
        """(the optimizer's optax state, (loss scale, finite steps in a row))."""
        return self.optimizer.state, self.scale_state

    @state.setter
    def state(self, value: tuple) -> None:
        self.optimizer.state, self.scale_state = value

    @property
    def steps(self) -> int:
        """Steps taken (skipped ones included): the wrapped optimizer's count."""
        return self.optimizer.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self.optimizer.steps = value

    # -- the training loop -------------------------------------------------------------------------
    def scale_loss(self, loss: Tensor) -> Tensor:
        """``loss`` times the current loss scale (the loss itself when scaling is off); call
        ``backward`` on the result. Compute the loss in float32, so the scaled value cannot overflow."""
        if not self.scaled:
            return loss
        return loss * asarray(self.scale_state[0], loss.backend, loss.dtype)

    def step(self, grads: Any = None) -> None:
        """One update from the compute-dtype gradients (``grads``: the tape's map; None: each ``.grad``)."""
        found = [Optimizer._gradient_of(p, grads) for p in self.compute_params]
        if all(g is None for g in found):
            raise ValueError("MixedPrecision.step: no parameter has a gradient; expected gradients from this "
                             "step's backward (opt.scale_loss(loss).backward())")
        g_raws = [p.backend.full(p.shape, 0, p.dtype) if g is None else g for p, g in zip(self.compute_params, found)]
        masters = Optimizer._arrays([m.raw() for m in self.masters])
        opt = self.optimizer
        new, opt.state, self.scale_state, compute = opt._on_host(
            lambda: self._update(masters, Optimizer._arrays(g_raws), opt.state, self.scale_state))
        for m, values in zip(self.masters, new):
            m.assign(Optimizer._raw_like(m, values))
        for p, values in zip(self.compute_params, compute):
            p.assign(Optimizer._raw_like(p, values))
        self.steps += 1

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    @property
    def loss_scale(self) -> float:
        """The current loss scale (1.0 when scaling is off)."""
        return float(self.scale_state[0])

    def master_of(self, p: Parameter) -> Parameter:
        """The float32 master of one of the model's Parameters."""
        for q, m in zip(self.compute_params, self.masters):
            if q is p:
                return m
        raise ArgumentError(f"MixedPrecision.master_of: got a parameter of shape {tuple(p.shape)} that is not one of "
                            f"the model's; expected one of the {len(self.masters)} it was made with")

    # -- pickle and deepcopy: everything but the jitted function, which is made again ---------------
    def __getstate__(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "_update"}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)
        self._compile()

    def __repr__(self) -> str:
        scaling = "dynamic" if self.dynamic else "fixed" if self.scaled else "off"
        return (f"MixedPrecision({self.optimizer!r}, compute_dtype={self.compute_dtype.value}, "
                f"loss scaling {scaling})")

