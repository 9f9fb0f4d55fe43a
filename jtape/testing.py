"""Oracle checks for users: compare the tape's gradients with jax's, and with finite differences.

``check_operation(MyOp, forward, x, y, ...)`` checks a new ``Operation``'s hand-written backward;
``check_gradients(fn, x, y, ...)`` checks any function written with jtape. Both

1. run the function on an AutodiffBackend in each of ``dtypes``, seed its output with a *random*
   gradient ``u`` (never ones: ones hide transposition bugs) and walk the tape;
2. compare every input's gradient with ``jax.vjp`` of the same function run on a plain
   ``JaxBackend`` — its kernels are jax functions, so jax differentiates them directly — in
   float64 (when JAX's x64 mode is on) from the same rounded inputs, within ``rtol`` times the
   oracle's largest magnitude (``TOLERANCE`` per dtype);
3. run a float64 finite-difference dot-product test per input: ``⟨Jᵀu, v⟩`` from the tape
   against ``⟨u, J v⟩ ≈ (⟨u, f(x + εv)⟩ - ⟨u, f(x - εv)⟩) / 2ε`` for a random direction v, and on
   a mismatch central differences element by element to find the worst element.

Each returns a ``GradientReport`` (one ``Check`` per dtype × input × test, printable as a table)
and, when a check fails, raises ``GradientCheckError`` (an ``AssertionError``, so pytest shows it)
naming the test, dtype, input, element, both values and the error against its bound.

This module is the one place under ``jtape/`` that calls ``jax.vjp``: it is the oracle, never
part of the library's own gradient path. Inputs must be chosen away from kinks (relu at 0, ties
of max) where neither jax nor finite differences can agree with a one-sided rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jax
import numpy as np

from .autodiff.backend import AutodiffBackend, new
from .autodiff.backend import plain as plain_backend
from .backends import JaxBackend, NumpyBackend
from .ops.base import Operation
from .tensor.dtype import DataType
from .tensor.errors import ArgumentError, DTypeError
from .tensor.random import Generator
from .tensor.raw import RawTensor
from .tensor.shape import Shape
from .tensor.tensor import Tensor

# The tape's gradient may differ from the oracle's by rtol × (the oracle's max magnitude).
TOLERANCE = {"float64": 1e-10, "float32": 1e-5, "float16": 1e-2, "bfloat16": 5e-2}
# On a failed finite-difference test, inputs up to this size are searched element by element.
FD_ELEMENT_LIMIT = 4096


class GradientCheckError(AssertionError):
    """A gradient check failed; ``.report`` holds every check's result."""

    def __init__(self, message: str, report: "GradientReport"):
        super().__init__(message)
        self.report = report


@dataclass
class Check:
    """One comparison: ``kind`` is "jax.vjp" or "finite differences"."""

    kind: str
    dtype: str
    input: int
    shape: tuple
    ok: bool
    error: float                  # the largest |tape - oracle| (jax.vjp), |⟨Jᵀu,v⟩ - ⟨u,Jv⟩| (fd)
    bound: float                  # what error may be
    element: tuple | None = None  # where the tape and the oracle disagree most
    got: float | None = None      # the tape's value there
    expected: float | None = None  # the oracle's value there
    note: str = ""

    def describe(self) -> str:
        where = f"{self.kind}, {self.dtype}, input {self.input} (shape {self.shape})"
        if self.kind == "jax.vjp":
            if self.ok:
                text = (f"{where}: matches — largest difference {self.error:.3g} <= bound {self.bound:.3g}, at "
                        f"element {self.element} (the tape gives {self.got:.6g}, jax.vjp {self.expected:.6g})")
            else:
                text = (f"{where}: at element {self.element} the tape gives {self.got:.6g} but jax.vjp gives "
                        f"{self.expected:.6g}; max |error| {self.error:.3g} > bound {self.bound:.3g}")
        else:
            text = (f"{where}: ⟨Jᵀu, v⟩ from the tape and ⟨u, J v⟩ by central differences "
                    f"{'match' if self.ok else 'differ'} — difference {self.error:.3g} "
                    f"{'<=' if self.ok else '>'} bound {self.bound:.3g}")
            if self.element is not None:
                text += (f"; worst element {self.element}: the tape gives {self.got:.6g}, central differences "
                         f"give {self.expected:.6g}")
        return text + (f" ({self.note})" if self.note else "")


@dataclass
class GradientReport:
    """Every check of one ``check_operation`` / ``check_gradients`` call."""

    name: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def __str__(self) -> str:
        rows = [f"{self.name}: {len(self.checks) - len(self.failures())} of {len(self.checks)} checks passed"]
        rows += [f"  {'ok  ' if c.ok else 'FAIL'} {c.describe()}" for c in self.checks]
        return "\n".join(rows)


def check_operation(op_class: Callable[..., Operation], forward: Callable[..., RawTensor], *inputs: Any,
                    kwargs: dict | None = None, **options: Any) -> GradientReport:
    """Check ``op_class``'s backward rule against ``jax.vjp`` of ``forward`` and finite differences.

    ``forward(backend, *raws, **kwargs) -> RawTensor`` computes the op with Backend ops;
    ``op_class(out, *raws, **kwargs)`` builds its Operation (an Operation subclass, or any callable
    that builds one). For a built-in op's class (``jtape.ops.MatMulOp``), ``forward`` is run on the
    AutodiffBackend instead and must record exactly that one op. ``inputs`` are the op's
    tensor inputs as arrays (NumPy arrays, lists, Tensors): float ones are differentiated, integer
    and bool ones held constant; static arguments go in ``kwargs``. Options:

    - ``dtypes``: the float dtypes to run the tape in (default float32, and float64 under x64);
    - ``wrt``: indices of the inputs to check (default: every float input);
    - ``backend``: the inner backend the tape runs on (default ``JaxBackend("cpu")``);
    - ``rtol``: a tolerance for every dtype instead of ``TOLERANCE``; ``seed``: the random draws;
    - ``fd`` (True), ``fd_eps`` (1e-6), ``fd_rtol`` (1e-6): the finite-difference test;
    - ``raise_on_failure`` (True): raise ``GradientCheckError``, else only return the report.
    """
    kwargs = dict(kwargs or {})
    name = f"check_operation({getattr(op_class, '__name__', repr(op_class))})"

    def plain(backend: Any, raws: list) -> RawTensor:
        return _result(name, forward(backend, *raws, **kwargs))

    def taped(ad: AutodiffBackend, raws: list) -> RawTensor:
        if getattr(op_class, "op", None) is None:            # a user's Operation: build it by hand
            out = plain(ad.inner(), raws)
            ad.tape().record(op_class(out, *raws, **kwargs))
            return out
        # A registered op's rule: run ``forward`` on the AutodiffBackend, which records the op with
        # its statics normalised by the op's own check — exactly as in use.
        out = _result(name, forward(ad, *raws, **kwargs))
        recorded = ad.tape().operations()
        if len(recorded) != 1 or type(recorded[0]) is not op_class:
            got = ", ".join(type(op).__name__ for op in recorded) or "nothing"
            raise ValueError(f"{name}: forward on an AutodiffBackend recorded {got}; expected exactly one "
                             f"{op_class.__name__}")
        return out

    return _check(name, taped, plain, inputs, **options)


def check_gradients(fn: Callable[..., Tensor], *inputs: Any, **options: Any) -> GradientReport:
    """Check the tape's gradients of ``fn`` (Tensors in, one float Tensor out, written with jtape)
    against ``jax.vjp`` and finite differences. ``fn`` must build everything from its inputs'
    backend (pass parameters as inputs). Options as ``check_operation``."""
    name = f"check_gradients({getattr(fn, '__name__', repr(fn))})"

    def plain(backend: Any, raws: list) -> RawTensor:
        out = fn(*[Tensor(r, backend) for r in raws])
        if not isinstance(out, Tensor):
            raise ArgumentError(f"{name}: fn returned {type(out).__name__}; expected one Tensor")
        return _result(name, out.raw())

    return _check(name, plain, plain, inputs, **options)


# -- the checks ------------------------------------------------------------------------------------
def _check(name: str, taped: Callable, plain: Callable, inputs: Sequence[Any], *, dtypes: Sequence[str] | None = None,
           wrt: Sequence[int] | None = None, backend: Any = None, rtol: float | None = None, seed: int = 0,
           fd: bool = True, fd_eps: float = 1e-6, fd_rtol: float = 1e-6, raise_on_failure: bool = True
           ) -> GradientReport:
    arrays = [_as_array(x) for x in inputs]
    is_float = [DataType.of(a.dtype).is_float for a in arrays]
    wrt = _wrt(name, wrt, is_float, arrays)
    x64 = bool(jax.config.jax_enable_x64)
    dtypes = tuple(dtypes) if dtypes is not None else (("float32", "float64") if x64 else ("float32",))
    for d in dtypes:
        if not DataType.of(d).is_float:
            raise ValueError(f"{name}: got dtype {DataType.of(d).value} in dtypes; expected float dtypes")
    inner = plain_backend(backend) if backend is not None else JaxBackend("cpu")
    rng = Generator(seed)          # the random cotangents and directions: jax.random, from seed
    report = GradientReport(name)
    oracle_dtype = "float64" if x64 else "float32"

    for dtype in dtypes:
        xs = [_cast(a, dtype) if f else a for a, f in zip(arrays, is_float)]
        u, grads = _tape_gradients(taped, inner, xs, wrt, rng)
        wide = [_cast(a, oracle_dtype) if f else a for a, f in zip(xs, is_float)]
        expected = _oracle(plain, wide, wrt, u)
        tol = TOLERANCE.get(DataType.of(dtype).value, 1e-5) if rtol is None else rtol
        for i in wrt:
            report.checks.append(_compare(dtype, i, grads[i], expected[i], tol))

    if fd:
        report.checks += _finite_differences(taped, plain, inner, arrays, is_float, wrt, rng, fd_eps, fd_rtol)
    if raise_on_failure and not report.ok:
        failed = report.failures()
        lines = "\n".join("  " + c.describe() for c in failed)
        raise GradientCheckError(f"{name}: {len(failed)} of {len(report.checks)} checks failed\n{lines}", report)
    return report


def _standard_normal(rng: Generator, shape: tuple) -> np.ndarray:
    """Standard-normal samples as a float64 NumPy array, drawn with jax.random from ``rng``'s next key."""
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    return np.asarray(jax.random.normal(rng.next_key(), tuple(shape), dtype), np.float64)


def _tape_gradients(taped: Callable, inner: Any, xs: list, wrt: Sequence[int], rng: Generator
                    ) -> tuple[np.ndarray, dict]:
    """Run on a fresh AutodiffBackend over ``inner``, seed a random ``u``, walk; gradients as arrays
    (None where the rule gave none)."""
    ad = new(inner)
    raws = [inner.from_numpy(x) for x in xs]
    out = taped(ad, raws)
    u = _standard_normal(rng, tuple(out.shape)).astype(out.dtype.numpy)
    walked = ad.tape().walk({out: inner.from_numpy(u)}, ad)
    grads = {i: (None if walked.get(raws[i]) is None else np.asarray(inner.to_numpy(walked[raws[i]]))) for i in wrt}
    return u, grads


def _oracle(plain: Callable, xs: list, wrt: Sequence[int], u: np.ndarray) -> dict:
    """jax.vjp of the function on a plain JaxBackend (RawTensors holding jax's tracers)."""
    jb = _oracle_backend()
    consts = [jb.from_numpy(x) for x in xs]

    def f(*primals: Any) -> Any:
        raws = list(consts)
        for i, p in zip(wrt, primals):
            raws[i] = RawTensor(p, Shape(p.shape), DataType.of(p.dtype), jb.device())
        return plain(jb, raws).data

    out, pullback = jax.vjp(f, *[consts[i].data for i in wrt])
    return {i: np.asarray(g) for i, g in zip(wrt, pullback(u.astype(out.dtype)))}


def _compare(dtype: str, i: int, got: np.ndarray | None, expected: np.ndarray, rtol: float) -> Check:
    expected = expected.astype(np.float64)
    note = ""
    if got is None:
        got, note = np.zeros_like(expected), "the rule returned no gradient (None); compared as zeros"
    got = got.astype(np.float64)
    shape = tuple(expected.shape)
    if expected.size == 0:
        return Check("jax.vjp", dtype, i, shape, True, 0.0, 0.0, (), 0.0, 0.0, note)
    diff = np.abs(got - expected)
    diff = np.where(np.isnan(diff), np.inf, diff)
    scale = float(np.max(np.abs(expected)))
    bound = rtol * scale if scale > 0 else rtol
    worst = np.unravel_index(int(np.argmax(diff)), shape)
    error = float(diff[worst])
    return Check("jax.vjp", dtype, i, shape, error <= bound, error, bound, tuple(int(k) for k in worst),
                 float(got[worst]), float(expected[worst]), note)


def _finite_differences(taped: Callable, plain: Callable, inner: Any, arrays: list, is_float: list,
                        wrt: Sequence[int], rng: Generator, eps: float, rtol: float) -> list[Check]:
    """The dot-product test in float64, per input: ⟨Jᵀu, v⟩ (tape) against central differences."""
    backend, note = _float64_backend(inner)
    xs = [_cast(a, "float64") if f else a for a, f in zip(arrays, is_float)]
    u, grads = _tape_gradients(taped, backend, xs, wrt, rng)

    def loss(values: list) -> float:       # ⟨u, f(values)⟩ on the plain backend
        result = plain(backend, [backend.from_numpy(v) for v in values])
        return float(np.sum(u * np.asarray(backend.to_numpy(result), np.float64)))

    def directional(i: int, direction: np.ndarray) -> float:     # ⟨u, J_i direction⟩ by central differences
        plus, minus = list(xs), list(xs)
        plus[i], minus[i] = xs[i] + eps * direction, xs[i] - eps * direction
        return (loss(plus) - loss(minus)) / (2 * eps)

    base = abs(u) * np.abs(np.asarray(backend.to_numpy(plain(backend, [backend.from_numpy(x) for x in xs]))))
    noise = float(np.sum(base)) * 1e-16 / eps          # rounding in ⟨u, f⟩, divided by 2ε
    checks = []
    for i in wrt:
        g = np.zeros(xs[i].shape) if grads[i] is None else grads[i]
        v = _standard_normal(rng, xs[i].shape)

        taped_dot, fd_dot = float(np.sum(g * v)), directional(i, v)
        error = abs(taped_dot - fd_dot)
        bound = rtol * max(abs(taped_dot), abs(fd_dot)) + 10 * noise + 1e-12
        check = Check("finite differences", "float64", i, tuple(xs[i].shape), error <= bound, error, bound,
                      note="; ".join(n for n in (note, "the rule returned no gradient (None)" if grads[i] is None
                                                  else "") if n))
        if not check.ok and xs[i].size <= FD_ELEMENT_LIMIT:
            # Find the element: central differences along each coordinate direction in turn.
            worst_err = -1.0
            for index in np.ndindex(*xs[i].shape):
                e = np.zeros(xs[i].shape)
                e[index] = 1.0
                fd_value = directional(i, e)
                if abs(fd_value - g[index]) > worst_err:
                    worst_err = abs(fd_value - g[index])
                    check.element, check.got, check.expected = tuple(int(k) for k in index), float(g[index]), fd_value
        checks.append(check)
    return checks


# -- helpers ---------------------------------------------------------------------------------------
_ORACLE: list = []


def _oracle_backend() -> JaxBackend:
    if not _ORACLE:
        _ORACLE.append(JaxBackend("cpu"))
    return _ORACLE[0]


def _float64_backend(inner: Any) -> tuple[Any, str]:
    """``inner`` if it holds float64 (JaxBackend needs x64 mode), else a NumpyBackend."""
    try:
        inner.full((), 0, "float64")
        return inner, ""
    except DTypeError:
        return NumpyBackend(), f"run on NumpyBackend: {inner.name()} has no float64 without JAX's x64 mode"


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return np.asarray(x.numpy())
    if isinstance(x, RawTensor):
        return np.asarray(x.data)
    return np.asarray(x)


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    return a.astype(DataType.of(dtype).numpy)


def _wrt(name: str, wrt: Sequence[int] | None, is_float: list, arrays: list) -> list[int]:
    floats = [i for i, f in enumerate(is_float) if f]
    if wrt is None:
        if not floats:
            got = ", ".join(str(a.dtype) for a in arrays) or "none"
            raise ValueError(f"{name}: no input to differentiate (got inputs of dtypes {got}); expected at least "
                             f"one float input")
        return floats
    wrt = list(wrt)
    for i in wrt:
        if not (isinstance(i, int) and 0 <= i < len(arrays)) or not is_float[i]:
            raise ValueError(f"{name}: got wrt={tuple(wrt)} for {len(arrays)} inputs; expected indices of float "
                             f"inputs (here {tuple(floats)})")
    if not wrt:
        raise ValueError(f"{name}: got wrt=(); expected at least one input to check")
    return wrt


def _result(name: str, out: Any) -> RawTensor:
    if not isinstance(out, RawTensor):
        raise ArgumentError(f"{name}: the function returned {type(out).__name__}; expected one RawTensor")
    if not out.dtype.is_float:
        raise DTypeError(f"{name}: the function returned a tensor of dtype {out.dtype.value}; expected a float result")
    return out
