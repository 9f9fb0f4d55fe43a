"""Parameter groups: PyTorch's ``[{"params": [...], "lr": ...}, ...]`` over optax.

Each group gets its own optax transformation, built from the group's options. Its numeric
hyperparameters (learning rate, momentum, betas, weight decay, ...) are *injected*
(``optax.inject_hyperparams``): they live in the optax state as arrays, not as constants of
the update function. So changing ``opt.param_groups[i]["lr"]`` takes effect at the next step —
eagerly, and under ``jtape.jit``, where the optimizer state (and with it the learning rate) is
an input of the compiled program.

With several groups, each group's transformation is wrapped in ``optax.masked`` over the whole
parameter list: its state holds entries only for its own parameters (``optax.MaskedNode``
elsewhere), indexed by the parameter's position in ``opt.params``. The groups' updates are
chained: each group transforms its own gradients and passes the others through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ..nn.module import Parameter
from ..tensor.errors import ArgumentError, DTypeError


def parse_groups(where: str, params: Any, defaults: Mapping[str, Any] | None) -> tuple[list[Parameter], list[dict]]:
    """``params`` (Parameters, or dicts with a ``"params"`` entry and per-group options) as the
    flat list of distinct Parameters and a list of groups: each a dict of every option (the group's
    own, else ``defaults``) and ``"params"``, the list of its Parameters. ``defaults`` None: any
    option is let through (a first pass that only collects the parameters)."""
    items = list(params)
    if not items:
        raise ValueError(f"{where}: got no parameters")
    if all(isinstance(item, Mapping) for item in items):
        raw_groups = [dict(item) for item in items]
    elif any(isinstance(item, Mapping) for item in items):
        raise ArgumentError(f"{where}: got a list mixing Parameters and dicts; expected Parameters, or dicts "
                            f"with a 'params' entry (parameter groups)")
    else:
        raw_groups = [{"params": items}]
    flat: list[Parameter] = []
    groups = []
    for i, raw in enumerate(raw_groups):
        if "params" not in raw:
            raise ArgumentError(f"{where}: parameter group {i} has keys {sorted(raw)}; expected a 'params' entry")
        unknown = sorted(set(raw) - set(defaults or ()) - {"params"})
        if unknown and defaults is not None:
            raise ArgumentError(f"{where}: parameter group {i} has options {unknown}; expected options among "
                                f"{sorted(defaults)}")
        ps = raw["params"]
        members: list[Parameter] = []
        for p in [ps] if isinstance(ps, Parameter) else ps:
            _check_parameter(where, p)
            if any(p is q for q in members):
                continue
            if any(p is q for q in flat):
                raise ArgumentError(f"{where}: a parameter of shape {tuple(p.shape)} is in more than one parameter "
                                    f"group; expected each parameter in one group")
            members.append(p)
            flat.append(p)
        groups.append({**(defaults or {}), **{k: v for k, v in raw.items() if k != "params"}, "params": members})
    if not flat:
        raise ValueError(f"{where}: got no parameters")
    return flat, groups


def _check_parameter(where: str, p: Any) -> None:
    if not isinstance(p, Parameter):
        raise ArgumentError(f"{where}: got a {type(p).__name__}; expected Parameters (pass model.parameters())")
    if p.dtype.needs_x64 and not jax.config.jax_enable_x64:
        raise DTypeError(f"{where}: a {p.dtype.value} parameter needs JAX's 64-bit mode for the optax update; "
                         f"turn it on with jax.config.update('jax_enable_x64', True)")


def hyperparam_dtype(params: Iterable[Parameter]) -> Any:
    """The dtype of injected hyperparameters: float32, or float64 when a parameter is float64 (a
    learning rate stored in bfloat16 would be rounded to 3 significant digits)."""
    return jnp.float64 if any(p.dtype.value == "float64" for p in params) else jnp.float32


def combine(transforms: list[optax.GradientTransformation], masks: list[list[bool]]) -> optax.GradientTransformation:
    """One transformation over all parameters from one per group; its state is the tuple of the
    groups' states. One group: its transformation as it is (no mask)."""
    parts = [optax.with_extra_args_support(t) for t in transforms]
    if len(parts) > 1:
        parts = [optax.masked(t, m) for t, m in zip(parts, masks)]

    def init(params: Any) -> tuple:
        return tuple(t.init(params) for t in parts)

    def update(updates: Any, state: tuple, params: Any = None, **extra: Any) -> tuple[Any, tuple]:
        new = []
        for t, s in zip(parts, state):
            updates, s = t.update(updates, s, params, **extra)
            new.append(s)
        return updates, tuple(new)

    return optax.GradientTransformationExtraArgs(init, update)


def injected(state: Any) -> Any:
    """The ``inject_hyperparams`` state inside one group's state (through ``optax.masked``), or None."""
    while True:
        if hasattr(state, "hyperparams") and isinstance(state.hyperparams, Mapping):
            return state
        if isinstance(state, optax.MaskedState):
            state = state.inner_state
            continue
        return None


def with_hyperparams(state: Any, values: Mapping[str, Any]) -> Any:
    """``state`` (one group's) with its injected hyperparameters ``values`` replaced (same dtypes)."""
    if isinstance(state, optax.MaskedState):
        return state._replace(inner_state=with_hyperparams(state.inner_state, values))
    old = state.hyperparams
    new = {k: jnp.asarray(values[k], dtype=jnp.result_type(v)) if k in values else v for k, v in old.items()}
    return state._replace(hyperparams=new)


def same(a: Any, b: Any) -> bool:
    """Whether two option values are equal (numbers, tuples, callables by identity)."""
    if a is b:
        return True
    if callable(a) or callable(b):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class Sync:
    """Brings each group's changed options into the optax state before the state is read.

    ``seen[i]`` holds group i's options as last written into the state. An option that changed
    and feeds injected hyperparameters (``sources[key]`` names them) is written as arrays; any
    other changed option — one that fixes the update's structure (``nesterov``, a schedule, an
    option that was 0 and so added no term) — raises, naming what can change.
    """

    def __init__(self, where: str, sources: Mapping[str, tuple[str, ...]]):
        self.where, self.sources = where, sources
        self.seen: list[dict] = []

    def remember(self, groups: list[dict]) -> None:
        self.seen = [{k: v for k, v in g.items() if k != "params"} for g in groups]

    def forget(self) -> None:
        """Write every group's injected options at the next ``apply`` (after loading a state)."""
        self.seen = [{k: _Unseen for k in seen} for seen in self.seen]

    def changed(self, groups: list[dict]) -> bool:
        """Whether any group's option differs from what was last written (``apply`` has work)."""
        for group, seen in zip(groups, self.seen):
            get = group.get
            for k, v in seen.items():
                value = get(k)
                if value is not v and not same(value, v):
                    return True
        return False

    def apply(self, groups: list[dict], state: tuple, to_optax: Callable[[dict], dict[str, Any]]) -> tuple:
        """``state`` with every changed option written; ``to_optax`` maps a group's options to the
        injected hyperparameters' values."""
        if not self.changed(groups):
            return state
        new_state = list(state)
        for i, (group, seen) in enumerate(zip(groups, self.seen)):
            changed = [k for k in seen if not same(group.get(k), seen[k])]
            if not changed:
                continue
            inj = injected(state[i])
            names = set() if inj is None else set(inj.hyperparams)
            for key in changed:
                if seen[key] is _Unseen:      # after a load: write it, whatever it is
                    continue
                wanted = self.sources.get(key, ())
                if callable(seen[key]) or callable(group.get(key)) or not wanted or not set(wanted) <= names:
                    changeable = sorted(k for k, v in self.sources.items()
                                        if set(v) <= names and not callable(seen.get(k)))
                    raise ArgumentError(f"{self.where}: param_groups[{i}][{key!r}] changed from {seen[key]!r} to "
                                        f"{group.get(key)!r}; expected changes only to {changeable} (this option "
                                        f"fixes the update's structure: build a new optimizer to change it)")
            values = {k: v for k, v in to_optax(group).items() if k in names and not callable(v)}
            new_state[i] = with_hyperparams(state[i], values)
            self.seen[i] = {k: group.get(k) for k in seen}
        return tuple(new_state)


_Unseen = object()  # marks an option as not yet written into the state
