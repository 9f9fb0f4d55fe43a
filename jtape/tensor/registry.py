"""The op registry: one ``OpDef`` per op, the single source of truth every layer is derived from.

An op is written once, in its family's file under ``jtape/ops``::

    @op(jax=jnp.exp, numpy=np.exp)
    def exp(x: Tensor):
        '''e^x, elementwise.'''
        return x.shape, float_dtype("exp", x.dtype)

    @exp.rule
    class ExpOp(Operation):
        '''out = exp(x).  Derivation: d exp(x)/dx = exp(x) = out, so grad_x = g * out.'''
        def vjp(self, g, out, x):
            return [g * out]

The decorated function is the op's **check**: its signature (each parameter annotated with an
argument kind from ``jtape.tensor.args``) is the op's signature on every backend and on ``Tensor``;
its body looks at shapes and dtypes only and returns the output's ``(shape, dtype)`` — plus, where
a static argument's final form depends on the shapes (a negative dim), a dict of those. ``jax=``
and ``numpy=`` are the kernels (arrays and normalised statics in, an array out); ``@exp.rule``
names the ``Operation`` holding the backward rule (``exp.operation``). A ``@composite`` op is
written with other ops instead.

Everything else subscribes (``subscribe``): the backends install a checked method per op, the
``AutodiffBackend`` a recording one, ``Tensor`` a method, the docs a page entry. So adding an op
is one entry here plus its line in the typed ``Backend`` protocol (a test checks the two agree).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator

from .args import Kind, Tensors, scalar_for
from .errors import ArgumentError, BackendError, JtapeError
from .raw import RawTensor
from .shape import Shape
from .tensor import Tensor, install_op_method

_CACHE_LIMIT = 4096


class OpDef:
    """Everything about one op: signature, check, kernels, rule, and flags.

    ``family`` groups ops in the docs; ``method`` (default True) gives ``Tensor`` a method of the
    op's name; ``value_check(backend, inputs, statics)`` checks what shapes cannot show (index
    values) on concrete arrays."""

    def __init__(self, check: Callable, *, kernels: dict[str, Callable] | None = None, composite: bool = False,
                 family: str = "", method: bool = True, value_check: Callable | None = None):
        self.name = check.__name__
        self.check_fn = check
        self.doc = inspect.getdoc(check) or ""
        self.kernels = dict(kernels or {})
        self.composite = composite
        self.family = family or check.__module__.rsplit(".", 1)[-1]
        self.method = method
        self.value_check = value_check
        self.operation: type | None = None  # the Operation class with the backward rule (None: no gradient)
        self.signature = inspect.signature(check, eval_str=True)
        self.params = list(self.signature.parameters.values())
        if composite:
            self.params = self.params[1:]  # the backend the composite runs on
            self.signature = self.signature.replace(parameters=self.params)
        for p in self.params:
            if not isinstance(p.annotation, Kind):
                raise ArgumentError(f"op {self.name}: parameter {p.name!r} has no argument kind annotation")
        self._varargs = any(p.kind is p.VAR_POSITIONAL for p in self.params)
        # How many positional arguments a call that needs no binding has; None for an op with *args
        # (einsum(spec, x) must still gather x into its tuple of tensors).
        self.arity = None if self._varargs else len(self.params)
        self._defaults = tuple(p.default for p in self.params)
        self.inputs = tuple(i for i, p in enumerate(self.params) if p.annotation.tensor)
        self.statics = tuple((i, p.name, p.annotation) for i, p in enumerate(self.params) if not p.annotation.tensor)
        self.static_names = tuple(name for _, name, _ in self.statics)
        self.dynamic = tuple(name for _, name, kind in self.statics if kind.dynamic)
        self.traced = self.dynamic      # scalars a deferred program takes as arguments (``rule``: less ``concrete``)
        self._keyed = tuple(n for n in self.static_names if n not in self.dynamic)
        self._sequences = frozenset(i for i, p in enumerate(self.params) if p.annotation is Tensors)
        self._cache: dict = {}

    # -- calling ---------------------------------------------------------------------------------
    def bind(self, args: tuple, kwargs: dict) -> tuple:
        """Every argument, positionally in signature order, defaults filled in (``inspect.Signature.bind``
        for keywords; a tuple for ``*args``)."""
        if not kwargs and not self._varargs:
            n = len(args)
            if n == self.arity:
                return args
            if n < self.arity and self._defaults[n:].count(inspect.Parameter.empty) == 0:
                return args + self._defaults[n:]
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise ArgumentError(f"{self.name}: {e}") from None
        bound.apply_defaults()
        return tuple(bound.arguments[p.name] for p in self.params)

    def check(self, args: tuple) -> tuple[list, dict, Shape, Any]:
        """Check a bound call: returns ``(inputs, statics, shape, dtype)`` — the input tensors in
        order (a sequence parameter as a tuple), the normalised static arguments by name, and the
        output's shape and dtype. Raises a jtape error naming the op before any kernel runs.
        Results are cached, keyed on the inputs' shapes and dtypes and the normalised statics
        (scalars, which compiled kernels take as traced arguments, are left out of the key)."""
        name = self.name
        statics = {}
        for i, n, kind in self.statics:
            statics[n] = kind.normalize(name, n, args[i])
        inputs, key = [], []
        for n in self._keyed:
            key.append(statics[n])
        for i in self.inputs:
            x = args[i]
            if i in self._sequences:
                x = Tensors.normalize(name, self.params[i].name, x)
                for t in x:
                    if t.__class__ is not RawTensor:
                        raise _not_raw(name, self.params[i].name, t)
                key.append(tuple([(t.shape, id(t.dtype)) for t in x]))
            else:
                if x.__class__ is not RawTensor:
                    raise _not_raw(name, self.params[i].name, x)
                key.append((x.shape, id(x.dtype)))     # dtypes are singletons: id hashes in C
            inputs.append(x)
        key = tuple(key)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._infer(inputs, statics)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = hit
        shape, dtype, final = hit
        if final:
            statics.update(final)
        for n in self.dynamic:
            statics[n] = scalar_for(name, inputs[0].dtype, statics[n])
        return inputs, statics, shape, dtype

    def _infer(self, inputs: list, statics: dict) -> tuple:
        call, it = [], iter(inputs)
        for i, p in enumerate(self.params):
            call.append(next(it) if p.annotation.tensor else statics[p.name])
        if self._varargs:
            *call, last = call
            call += list(last)
        result = self.check_fn(*call)
        shape, dtype, *rest = result
        return Shape(shape), dtype, (rest[0] if rest else None)

    # -- building the op -------------------------------------------------------------------------
    def rule(self, cls: type) -> type:
        """Class decorator: ``cls`` (an Operation subclass) holds this op's backward rule; it becomes
        ``self.operation`` and ``cls.op`` is this OpDef."""
        if self.composite:
            raise ArgumentError(f"op {self.name}: a composite op has no rule of its own")
        self.operation = cls
        cls.op = self
        self.traced = tuple(n for n in self.dynamic if n not in cls.concrete)
        _notify(self)
        return cls

    def composite_method(self) -> Callable[..., Any]:
        """The backend method of a composite op: normalise the arguments by their kinds, then run
        the op's function with the backend it was called on (so its inner ops are that backend's)."""
        run, name = self.run, self.name

        def method(backend: Any, *args: Any, **kwargs: Any) -> Any:
            args = self.bind(args, kwargs)
            ready, tensors = [], []
            for p, value in zip(self.params, args):
                if p.annotation.tensor:
                    for t in (value if isinstance(value, (list, tuple)) else (value,)):
                        if t.__class__ is not RawTensor:
                            raise _not_raw(name, p.name, t)
                        tensors.append(t)
                    ready.append(value)
                else:
                    ready.append(p.annotation.normalize(name, p.name, value))
            accepts = getattr(backend, "accepts", None)
            if accepts is not None:
                accepts(name, tensors)
            return run(backend, *ready)
        return self.describe(method, f"{name}: a composite op, written with other ops of the backend.")

    def describe(self, method: Callable, note: str) -> Callable:
        """Give a generated backend method the op's name, signature and docstring."""
        method.__name__ = method.__qualname__ = self.name
        method.__doc__ = f"{self.doc}\n\n{note}" if self.doc else note
        this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        method.__signature__ = self.signature.replace(parameters=[this, *self.params])
        return method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run this op on Tensors, on their backend: ``scatter_add(x.shape, dim, index, g)`` in a
        rule reads like its derivation. Tensor arguments are unwrapped and results wrapped."""
        found = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        found += [t for a in (*args, *kwargs.values()) if isinstance(a, (list, tuple)) for t in a
                  if isinstance(t, Tensor)]
        if not found:
            raise ArgumentError(f"{self.name}: called with no Tensor argument; call it on a backend instead "
                            f"(backend.{self.name}(...))")
        backend = found[0].backend

        def raw(a: Any) -> Any:
            if isinstance(a, Tensor):
                return found[0]._lift(a, self.name)   # a BackendError if a is on another backend
            if isinstance(a, (list, tuple)) and any(isinstance(t, Tensor) for t in a):
                return [raw(t) for t in a]
            return a
        out = getattr(backend, self.name)(*map(raw, args), **{k: raw(v) for k, v in kwargs.items()})
        return Tensor(out, backend) if isinstance(out, RawTensor) else [Tensor(r, backend) for r in out]

    def __repr__(self) -> str:
        kind = "composite" if self.composite else "primitive"
        return f"<{kind} op {self.name}{self.signature}>"


class NotARawTensor(BackendError):
    """An op got something else (a list, an array, a Tensor) where a tensor goes; a backend
    re-raises it naming itself (``made_by``)."""

    def __init__(self, op: str, got: Any):
        self.op, self.got = op, got
        super().__init__(f"{op}: got a {type(got).__name__}; expected a RawTensor made by a backend "
                         f"(Tensor.raw() gives a Tensor's)")

    def made_by(self, backend: Any) -> BackendError:
        return BackendError(f"{self.op}: got a {type(self.got).__name__}; expected a RawTensor made by {backend!r}")


def _not_raw(op: str, name: str, x: Any) -> NotARawTensor:
    return NotARawTensor(op, x)


REGISTRY: dict[str, OpDef] = {}
_SUBSCRIBERS: list[Callable[[OpDef], None]] = []


def op(*, jax: Callable | None = None, numpy: Callable | None = None, family: str = "", method: bool = True,
       value_check: Callable | None = None) -> Callable[[Callable], OpDef]:
    """Decorator: register a primitive op from its check function and kernels (see the module docstring)."""
    kernels = {k: v for k, v in (("jax", jax), ("numpy", numpy)) if v is not None}

    def register(check: Callable) -> OpDef:
        return _register(OpDef(check, kernels=kernels, family=family, method=method, value_check=value_check))
    return register


def composite(*, family: str = "", method: bool = True) -> Callable[[Callable], OpDef]:
    """Decorator: register an op written with other ops: ``fn(backend, *args)``. It has no kernels
    and no rule of its own; its arguments are normalised by their kinds before ``fn`` runs."""
    def register(fn: Callable) -> OpDef:
        d = OpDef(fn, composite=True, family=family, method=method)
        d.run = fn
        return _register(d)
    return register


def _register(d: OpDef) -> OpDef:
    if d.name in REGISTRY:
        raise JtapeError(f"op {d.name!r} is registered twice")
    REGISTRY[d.name] = d
    _notify(d)
    return d


def _notify(d: OpDef) -> None:
    for fn in _SUBSCRIBERS:
        fn(d)


def subscribe(fn: Callable[[OpDef], None]) -> None:
    """Call ``fn(opdef)`` for every op registered so far and every op registered later (and again
    when an op gets its rule). Backends, ``AutodiffBackend`` and ``Tensor`` build their methods so."""
    _SUBSCRIBERS.append(fn)
    for d in list(REGISTRY.values()):
        fn(d)


def ops() -> Iterator[OpDef]:
    """Every registered op, in registration order."""
    return iter(list(REGISTRY.values()))


subscribe(install_op_method)  # every op is a Tensor method too
