"""``Optimizer``: applies an optax gradient transformation to a list of ``Parameter``\\ s.

The update maths is optax's (``optax.sgd``, ``optax.adam``, …); this class only moves arrays
between jtape and optax:

1. gather each parameter's gradient — from the tape's gradient map (``step(grads)``, keyed by
   the parameter's RawTensor) or from ``p.grad`` (``step()``);
2. run ``transform.update`` and ``optax.apply_updates`` as one jitted function on jax arrays
   (NumPy arrays of NumpyBackend are converted with ``jnp.asarray`` on the CPU and back);
3. give each parameter a new RawTensor holding its new values (``Parameter.assign``).

None of this touches the tape: the update works on raw arrays, never through the
AutodiffBackend, so nothing is recorded. Each parameter keeps its dtype.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..nn.module import Parameter
from ..tensor.errors import ArgumentError, DTypeError
from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor

LearningRate = float | Callable[[Any], Any]  # a number, or an optax schedule: step count -> lr


def _rebuilt(value: Any) -> bool:
    """Attributes a constructor call remakes rather than pickle: functions and optax transforms."""
    return callable(value) or isinstance(value, optax.GradientTransformation)


def _rebuild(cls: type, args: tuple, kwargs: dict, state: dict) -> Optimizer:
    """Unpickle an Optimizer: construct it again, then restore its state (``Optimizer.__reduce__``)."""
    opt = cls(*args, **kwargs)
    vars(opt).update(state)
    return opt


def _apply(transform: optax.GradientTransformation, params: list, grads: list, state: Any) -> tuple[list, Any]:
    updates, state = transform.update(grads, state, params)
    return optax.apply_updates(params, updates), state


class Optimizer:
    """Updates ``params`` with ``transform`` (any optax GradientTransformation).

    ``opt.step(grads)`` takes the map ``autodiff.backward(loss, backend)`` returns;
    ``opt.step()`` uses each parameter's ``.grad`` (left by ``loss.backward()``). A parameter
    with no gradient gets a zero gradient (stateful transforms — momentum, Adam, weight decay —
    may still move it). ``opt.zero_grad()`` clears every ``.grad``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Optimizer:  # noqa: PYI034
        self = super().__new__(cls)
        self._init_args = (args, kwargs)   # what pickle rebuilds the optax transform from (__reduce__)
        return self

    def __init__(self, params: Iterable[Parameter], transform: optax.GradientTransformation,
                 lr: LearningRate | None = None):
        self.params: list[Parameter] = []
        for p in params:
            if not isinstance(p, Parameter):
                raise ArgumentError(f"{type(self).__name__}: got a {type(p).__name__}; expected Parameters "
                                f"(pass model.parameters())")
            if p.dtype.needs_x64 and not jax.config.jax_enable_x64:
                raise DTypeError(f"{type(self).__name__}: a {p.dtype.value} parameter needs JAX's 64-bit mode for "
                                 f"the optax update; turn it on with jax.config.update('jax_enable_x64', True)")
            if all(p is not q for q in self.params):
                self.params.append(p)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no parameters")
        self.transform = transform
        self.lr = lr
        self.steps = 0
        self._update = jax.jit(functools.partial(_apply, transform))
        self.state = self._on_host(lambda: transform.init(self._arrays([p.raw() for p in self.params])))

    # -- the public surface --------------------------------------------------------------------
    def step(self, grads: Mapping[RawTensor, Any] | None = None) -> None:
        """Apply one update. ``grads``: the tape's map RawTensor -> gradient; None: use ``p.grad``."""
        found = [self._gradient_of(p, grads) for p in self.params]
        if all(g is None for g in found):
            source = ("the gradient map has no entry for any parameter" if grads is not None
                      else "no parameter has a .grad")
            raise ValueError(f"{type(self).__name__}.step: {source}; expected gradients from this step's "
                             f"backward (was the forward pass run on the AutodiffBackend with recording on?)")
        g_raws = [p.backend.full(p.shape, 0, p.dtype) if g is None else g for p, g in zip(self.params, found)]
        params = [p.raw() for p in self.params]
        new, self.state = self._on_host(lambda: self._update(self._arrays(params), self._arrays(g_raws), self.state))
        for p, values in zip(self.params, new):
            p.assign(self._raw_like(p, values))
        self.steps += 1

    def zero_grad(self) -> None:
        """Forget every parameter's ``.grad``."""
        for p in self.params:
            p.zero_grad()

    def current_lr(self) -> float | None:
        """The learning rate the next step uses (a schedule evaluated at the step count)."""
        if self.lr is None:
            return None
        return float(self.lr(self.steps)) if callable(self.lr) else float(self.lr)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.params)} parameters, lr={self.lr!r}, steps={self.steps})"

    # -- pickle and deepcopy ------------------------------------------------------------------------
    def __reduce__(self) -> tuple:
        """Pickled as its constructor call plus its state: an optax transform is made of closures,
        which pickle cannot store, so unpickling calls the constructor again (``SGD(params, lr=…)``;
        for ``Optimizer(params, transform)`` the transform itself must pickle) and then puts back every
        attribute that is not a function — the optax state (moments, counts), ``steps``, ``lr``.
        The parameters pickle as Parameters: pickle a model and its optimizer together
        (``pickle.dumps((model, opt))``) so that they share them again when loaded."""
        args, kwargs = self._init_args
        if args and not isinstance(args[0], (list, tuple)):    # an iterator, used up by now
            args = (list(self.params),) + tuple(args[1:])
        elif "params" in kwargs and not isinstance(kwargs["params"], (list, tuple)):
            kwargs = {**kwargs, "params": list(self.params)}
        state = {k: v for k, v in vars(self).items() if not _rebuilt(v) and k != "_init_args"}
        return _rebuild, (type(self), tuple(args), kwargs, state)

    def __deepcopy__(self, memo: dict) -> Optimizer:
        """A copy with copied Parameters and state (the optax transform, made of pure functions, is
        shared); ``copy.deepcopy((model, opt))`` keeps the copy's optimizer on the copy's parameters."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        for k, v in vars(self).items():
            setattr(new, k, v if _rebuilt(v) else copy.deepcopy(v, memo))
        return new

    # -- moving arrays between jtape and optax ------------------------------------------------------
    @staticmethod
    def _gradient_of(p: Parameter, grads: Mapping[RawTensor, Any] | None) -> RawTensor | None:
        g = p.raw().grad if grads is None else grads.get(p.raw())
        return g.raw() if isinstance(g, Tensor) else g

    def _on_host(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` where the parameters live: for NumPy data, on JAX's CPU device."""
        if isinstance(self.params[0].data, jax.Array):
            return fn()
        with jax.default_device(jax.devices("cpu")[0]):
            return fn()

    @staticmethod
    def _arrays(raws: list[RawTensor]) -> list[Any]:
        return [r.data if isinstance(r.data, jax.Array) else jnp.asarray(r.data) for r in raws]

    @staticmethod
    def _raw_like(p: Parameter, values: Any) -> RawTensor:
        """A new RawTensor for ``p`` holding ``values``, in the same kind of array as before."""
        if isinstance(p.data, jax.Array):  # stay on the device: no host round trip
            return RawTensor(values.astype(p.dtype.jax), p.shape, p.dtype, p.device)
        return p.backend.from_numpy(np.asarray(values), p.dtype)
