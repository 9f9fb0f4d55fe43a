"""Shared machinery of the op tests: the backends, the cases built from the spec table, inputs,
references and oracles (each computed once per case and shared by both backends), and the
tolerance check."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import numpy as np
import pytest
from spec import FLOATS, SPECS, TOLERANCE, OpSpec, Sample, grad_indices, np_dtype, rng_for

from jtape.backends import JaxBackend, NumpyBackend

BACKEND_NAMES = ("jax", "numpy")


TEST_DEVICE = os.environ.get("JTAPE_TEST_DEVICE", "cpu")  # benchmarks/gpu_check.sh sets gpu


def new_backend(name: str) -> Any:
    return JaxBackend(TEST_DEVICE) if name == "jax" else NumpyBackend()


BACKENDS = {name: new_backend(name) for name in BACKEND_NAMES}


# -- cases ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Case:
    spec: OpSpec
    sample: Sample
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.spec.name}-{self.dtype}-{self.sample.id}"

    @property
    def kwargs(self) -> dict:
        return self.sample.kwargs


# The default run (README) checks every op in every dtype family; the wide duplicates of a family
# (float64 and int64 forwards, half-precision gradients) are marked slow: CI runs them too.
SLOW_FORWARD = ("float64", "int64")
SLOW_GRADIENT = ("float16", "bfloat16")


def _cases(slow: tuple) -> list:
    return [pytest.param(case, id=case.id, marks=(pytest.mark.slow,) if case.dtype in slow else ())
            for spec in SPECS for dtype in spec.dtypes for sample in spec.samples_for(dtype)
            for case in [Case(spec, sample, dtype)]]


def forward_cases() -> list:
    return _cases(SLOW_FORWARD)


def gradient_cases(dtypes: tuple = FLOATS) -> list:
    return [p for p in _cases(SLOW_GRADIENT)
            if p.values[0].spec.grad and p.values[0].dtype in dtypes and p.values[0].sample.grad]


def as_list(out: Any) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


# -- per-case data, computed once ----------------------------------------------------------------
_cache: dict[tuple[str, str], Any] = {}


def _cached(kind: str):
    def wrap(fn):
        def get(case: Case):
            key = (kind, case.id)
            if key not in _cache:
                _cache[key] = fn(case)
            return _cache[key]
        return get
    return wrap


@_cached("inputs")
def inputs(case: Case) -> list[np.ndarray]:
    return case.spec.make_inputs(case.sample, case.dtype, rng_for(case.id))


_FLOAT_DTYPES = {np_dtype(d) for d in FLOATS}


def _wide(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Float inputs widened (exactly) to float64: the reference and the oracle run in float64 for
    every float dtype, from the case's own rounded inputs. So they add no rounding error of
    their own, and all float dtypes of one sample share one compiled reference."""
    return [a.astype(np.float64) if a.dtype in _FLOAT_DTYPES else a for a in arrays]


_jitted: dict[tuple[str, str, str], Any] = {}


def _jit_once(kind: str, case: Case, build: Any) -> Any:
    """One jitted function per (op, sample): a fresh jax.jit per case would recompile every time."""
    key = (kind, case.spec.name, case.sample.id)
    if key not in _jitted:
        _jitted[key] = jax.jit(build(case.spec, case.sample))
    return _jitted[key]


@_cached("reference")
def reference(case: Case) -> list[Any]:
    """The reference outputs' shapes and dtypes in the case's own dtypes (traced, not run): the
    contract for jtape's results."""
    return as_list(jax.eval_shape(partial(case.spec.ref, **case.kwargs), *inputs(case)))


@_cached("values")
def reference_values(case: Case) -> list[np.ndarray]:
    """The reference's values (computed in float64 for float dtypes, see _wide)."""
    ref = _jit_once("ref", case, lambda spec, sample: partial(spec.ref, **sample.kwargs))
    return [np.asarray(o) for o in as_list(ref(*_wide(inputs(case))))]


@_cached("cotangents")
def cotangents(case: Case) -> list[np.ndarray]:
    """A random output gradient per output, in the output's dtype (never ones: ones hide
    transposition bugs)."""
    rng = rng_for(case.id + "/g")
    return [rng.standard_normal(r.shape).astype(r.dtype) for r in reference(case)]


def _build_vjp(spec: OpSpec, sample: Sample) -> Any:
    diff = grad_indices(spec, sample)

    def vjp(arrays: list, cts: list) -> Any:
        def f(*primals: Any) -> Any:
            full = list(arrays)
            for i, p in zip(diff, primals):
                full[i] = p
            return spec.ref(*full, **sample.kwargs)
        out, pullback = jax.vjp(f, *[arrays[i] for i in diff])
        cts = [c.astype(o.dtype) for c, o in zip(cts, as_list(out))]
        return pullback(cts if isinstance(out, (list, tuple)) else cts[0])
    return vjp


@_cached("oracle")
def oracle(case: Case) -> list[np.ndarray]:
    """jax.vjp of the reference at the case's inputs, applied to its cotangents: one gradient per
    differentiable input (in float64, see _wide)."""
    vjp = _jit_once("vjp", case, _build_vjp)
    return [np.asarray(g) for g in vjp(_wide(inputs(case)), _wide(cotangents(case)))]


# -- checks --------------------------------------------------------------------------------------
def check_array(raw: Any, backend_name: str) -> None:
    """The RawTensor's data is the backend's array type, with the RawTensor's shape and dtype."""
    data = raw.data
    expected_type = jax.Array if backend_name == "jax" else np.ndarray
    assert isinstance(data, expected_type), f"data is {type(data).__name__}; expected {expected_type.__name__}"
    assert tuple(data.shape) == tuple(raw.shape), f"data shape {data.shape} != RawTensor.shape {tuple(raw.shape)}"
    assert np.dtype(data.dtype) == raw.dtype.numpy, f"data dtype {data.dtype} != RawTensor.dtype {raw.dtype}"


def assert_close(actual: Any, expected: Any, dtype: str, what: str = "") -> None:
    """Equal within TOLERANCE[dtype] times expected's max magnitude; exact for int/bool dtypes."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if dtype not in TOLERANCE:
        assert np.array_equal(actual, expected), f"{what}: {actual} != {expected}"
        return
    if expected.size == 0:
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    assert np.all(np.isfinite(e)), f"{what}: the reference is not finite: {e}"
    scale = float(np.max(np.abs(e)))
    err = float(np.max(np.abs(a - e))) if np.all(np.isfinite(a)) else np.inf
    assert err <= TOLERANCE[dtype] * scale, (
        f"{what}: max error {err:.3g} > {TOLERANCE[dtype]:g} x max|expected| ({scale:.3g})\n"
        f"actual:\n{a}\nexpected:\n{e}")
