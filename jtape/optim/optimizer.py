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

Parameter groups and changing hyperparameters are described in ``jtape.optim.groups``; saving
and restoring the state in ``jtape.optim.state``. What ``jtape.jit`` carries through a compiled
step is ``opt.state`` (the optax state, with the injected hyperparameters) and ``opt.steps``.
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
from ..tensor.errors import ArgumentError
from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor
from . import groups as _groups
from . import state as _state

LearningRate = float | Callable[[Any], Any]  # a number, or an optax schedule: step count -> lr
Params = Iterable[Parameter] | Iterable[Mapping[str, Any]]  # Parameters, or parameter groups (dicts)


def _rebuilt(value: Any) -> bool:
    """Attributes a constructor call remakes rather than pickle: functions and optax transforms."""
    return callable(value) or isinstance(value, optax.GradientTransformation)


def _rebuild(cls: type, args: tuple, kwargs: dict, state: dict) -> Optimizer:
    """Unpickle an Optimizer: construct it again, then restore its state (``Optimizer.__reduce__``)."""
    opt = cls(*args, **kwargs)
    opt.load_state_dict(state)
    return opt


def _apply(transform: optax.GradientTransformation, params: list, grads: list, state: Any,
           extra: dict) -> tuple[list, Any]:
    updates, state = transform.update(grads, state, params, **extra)
    return optax.apply_updates(params, updates), state


class Optimizer:
    """Updates parameters with an optax GradientTransformation.

    ``params``: Parameters, or parameter groups as PyTorch — dicts with ``"params"`` and the
    options that differ for that group. Here, with any optax ``transform``, a group may set the
    transform's *injected* hyperparameters (build it with ``optax.inject_hyperparams``):

        tx = optax.inject_hyperparams(optax.lion)(learning_rate=1e-4)
        opt = Optimizer([{"params": body}, {"params": head, "learning_rate": 1e-3}], tx)
        opt.param_groups[1]["learning_rate"] = 5e-4      # used from the next step on

    ``opt.step(grads)`` takes the map ``autodiff.backward(loss, backend)`` returns;
    ``opt.step()`` uses each parameter's ``.grad`` (left by ``loss.backward()``); ``value=``
    passes the loss to transforms that watch it (``optax.contrib.reduce_on_plateau``). A
    parameter with no gradient gets a zero gradient (stateful transforms — momentum, Adam, weight
    decay — may still move it). ``opt.zero_grad()`` clears every ``.grad``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Optimizer:  # noqa: PYI034
        self = super().__new__(cls)
        self._init_args = (args, kwargs)   # what pickle rebuilds the optax transform from (__reduce__)
        return self

    def __init__(self, params: Params, transform: optax.GradientTransformation, lr: LearningRate | None = None):
        items = list(params)
        flat, _ = _groups.parse_groups(type(self).__name__, items, None)
        probe = self._on_host_of(flat, lambda: transform.init(self._arrays([p.raw() for p in flat])))
        inj = _groups.injected(probe)
        defaults = {} if inj is None else {k: float(v) if jnp.issubdtype(jnp.result_type(v), jnp.floating)
                                           else int(v) for k, v in inj.hyperparams.items()}
        self._fixed, self._lr = transform, lr
        self._sources = {k: (k,) for k in defaults}
        self._build(items, defaults)

    # -- building ------------------------------------------------------------------------------
    def _build(self, params: Params, defaults: dict[str, Any]) -> None:
        """Parse the groups, make one transform per group and the state (subclasses call this)."""
        where = type(self).__name__
        self.params, self.param_groups = _groups.parse_groups(where, params, defaults)
        self.hyperparam_dtype = _groups.hyperparam_dtype(self.params)
        transforms = [self._group_transform(g) for g in self.param_groups]
        masks = [[any(p is q for q in g["params"]) for p in self.params] for g in self.param_groups]
        self.transform = _groups.combine(transforms, masks)
        self.steps = 0
        self._apply = functools.partial(_apply, self.transform)
        self._update = jax.jit(self._apply)
        self._sync = _groups.Sync(where, self._sources)
        self._sync.remember(self.param_groups)
        self._sync.forget()  # write each group's own options into its injected hyperparameters now
        self._state = self._on_host(lambda: self._sync.apply(
            self.param_groups, self.transform.init(self._arrays([p.raw() for p in self.params])), self._to_optax))

    def _group_transform(self, group: dict) -> optax.GradientTransformation:
        """The optax transformation of one group (SGD, Adam, AdamW build theirs from its options)."""
        for k in self._sources:
            if callable(group.get(k)):
                raise ArgumentError(f"{type(self).__name__}: parameter group option {k!r} is a schedule; expected a "
                                    f"number (a schedule goes into the optax transform itself)")
        return self._fixed

    def _to_optax(self, group: dict) -> dict[str, Any]:
        """The injected hyperparameters' values a group's options give."""
        return {k: group[k] for k in self._sources if k in group}

    # -- the state jtape.jit carries ------------------------------------------------------------
    @property
    def state(self) -> Any:
        """The optax state: a tuple with one entry per parameter group. Reading it first writes any
        changed group option (``param_groups[i]["lr"] = ...``) into its injected hyperparameters,
        so a compiled step, which reads ``opt.state`` as its input, sees the new value."""
        if self._sync.changed(self.param_groups):
            self._state = self._on_host(lambda: self._sync.apply(self.param_groups, self._state, self._to_optax))
        return self._state

    @state.setter
    def state(self, value: Any) -> None:
        self._state = value

    # -- the public surface --------------------------------------------------------------------
    def step(self, grads: Mapping[RawTensor, Any] | None = None, *, value: Any = None) -> None:
        """Apply one update. ``grads``: the tape's map RawTensor -> gradient; None: use ``p.grad``.
        ``value``: the loss (a Tensor or number), for transforms that need it (reduce_on_plateau)."""
        found = [self._gradient_of(p, grads) for p in self.params]
        if all(g is None for g in found):
            source = ("the gradient map has no entry for any parameter" if grads is not None
                      else "no parameter has a .grad")
            raise ValueError(f"{type(self).__name__}.step: {source}; expected gradients from this step's "
                             f"backward (was the forward pass run on the AutodiffBackend with recording on?)")
        params = [p.raw() for p in self.params]
        extra = {} if value is None else {"value": self._value_array(value)}
        state = self.state
        backend = self.params[0].backend
        join = getattr(backend, "deferred_update", None)
        if join is not None and any(p.backend is not backend for p in self.params):
            join = None

        def update() -> tuple:
            try:
                if join is not None:         # deferred eager: the update joins the backward's program
                    joined = join(self._apply, params, found, state, extra)
                    if joined is not None:
                        return joined
                g_raws = [p.backend.full(p.shape, 0, p.dtype) if g is None else g for p, g in zip(self.params, found)]
                return self._update(self._arrays(params), self._arrays(g_raws), state, extra)
            except TypeError as e:
                if "value" in str(e) and value is None:
                    raise ArgumentError(f"{type(self).__name__}.step: the optax transform needs value= (the loss it "
                                        f"watches, e.g. for reduce_on_plateau); got no value; expected "
                                        f"opt.step(value=loss)") from e
                raise
        new, self._state = self._on_host(update)
        for p, values in zip(self.params, new):
            p.assign(self._raw_like(p, values))
        self.steps += 1

    def zero_grad(self) -> None:
        """Forget every parameter's ``.grad``."""
        for p in self.params:
            p.zero_grad()

    def current_lr(self) -> float | None:
        """The learning rate the first group's next step uses (a schedule evaluated at the step count);
        None when it is not known (an optax transform without an injected learning rate)."""
        lr = self.lr
        if lr is None:
            return None
        return float(lr(self.steps)) if callable(lr) else float(lr)

    @property
    def lr(self) -> LearningRate | None:
        """The first group's learning rate (a number or a schedule)."""
        group = self.param_groups[0]
        return group.get("lr", group.get("learning_rate", self._lr))

    def state_dict(self, to_host: Callable[[Any], np.ndarray] = np.asarray) -> dict[str, Any]:
        """Everything needed to resume: ``{"state": {name: array}, "param_groups": [...], "steps": n}``.

        ``state``: every leaf of the optax state as a host array, named by its path in the state
        (``"0/inner_state/inner_state/0/mu/3"``: group 0, Adam's first moment of parameter 3);
        ``param_groups``: each group's JSON-able options and ``"params"``, the positions of its
        parameters in ``opt.params`` (schedules and masks are code: they are not saved);
        ``steps``: the step count. ``to_host`` turns a leaf into a NumPy array (``jtape.distributed``
        passes one that gathers sharded arrays). Arrays plus JSON: what ``jtape.save`` writes."""
        return _state.state_dict(self, to_host)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned (an optimizer of the same kind over the same parameters,
        in the same groups); names, shapes and groups are checked and a mismatch raises."""
        _state.load_state_dict(self, state_dict)
        self._sync.forget()

    def __repr__(self) -> str:
        n = len(self.param_groups)
        lrs = [g.get("lr", g.get("learning_rate", self._lr)) for g in self.param_groups]
        where = f"{len(self.params)} parameters" + (f" in {n} groups" if n > 1 else "")
        return f"{type(self).__name__}({where}, lr={lrs[0] if n == 1 else lrs!r}, steps={self.steps})"

    # -- pickle and deepcopy ------------------------------------------------------------------------
    def __reduce__(self) -> tuple:
        """Pickled as its constructor call plus its state: an optax transform is made of closures,
        which pickle cannot store, so unpickling calls the constructor again (``SGD(params, lr=…)``;
        for ``Optimizer(params, transform)`` the transform itself must pickle) and then puts back every
        the ``state_dict()`` — the optax state (moments, counts), ``steps``, the groups' options.
        The parameters pickle as Parameters: pickle a model and its optimizer together
        (``pickle.dumps((model, opt))``) so that they share them again when loaded."""
        args, kwargs = self._init_args
        groups = [dict(g, params=list(g["params"])) for g in self.param_groups]   # iterators are used up
        if args:
            args = (groups,) + tuple(args[1:])
        else:
            kwargs = {**kwargs, "params": groups}
        return _rebuild, (type(self), tuple(args), kwargs, self.state_dict())

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

    @staticmethod
    def _value_array(value: Any) -> Any:
        if isinstance(value, Tensor):
            value = value.data
        return value if isinstance(value, jax.Array) else jnp.asarray(np.asarray(value))

    def _on_host(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` where the parameters live: for NumPy data, on JAX's CPU device."""
        return self._on_host_of(self.params, fn)

    @staticmethod
    def _on_host_of(params: list[Parameter], fn: Callable[[], Any]) -> Any:
        if isinstance(params[0].data, jax.Array):
            return fn()
        with jax.default_device(jax.devices("cpu")[0]):
            return fn()

    @staticmethod
    def _arrays(raws: list[RawTensor]) -> list[Any]:
        return [r.data if isinstance(r.data, jax.Array) else jnp.asarray(r.data) for r in raws]

    @staticmethod
    def _raw_like(p: Parameter, values: Any) -> RawTensor:
        """A new RawTensor for ``p`` holding ``values``, in the same kind of array as before (read
        from ``p``'s RawTensor: it runs for every parameter of every step)."""
        raw = p.raw()
        data = raw.value()
        if isinstance(data, jax.Array):  # stay on the device: no host round trip
            if values.dtype is not data.dtype and values.dtype != raw.dtype.numpy:   # (dtypes: singletons)
                values = values.astype(raw.dtype.numpy)
            return RawTensor(values, raw.shape, raw.dtype, raw.device)
        return p.backend.from_numpy(np.asarray(values), raw.dtype)

