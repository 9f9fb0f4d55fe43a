"""Checking a jtape layer or loss against the same computation written in plain ``jax.numpy``.

``compare(module, reference, inputs, backend, dtype)`` runs ``module`` on the inputs (float arrays
become tensors that get gradients, integer and bool arrays constants), checks its output(s) against
``reference(params, *inputs)``, then seeds a random scalar ``Σ out · ct`` (never all ones: that hides
transpositions), runs ``backward`` and checks every float input's and every parameter's ``.grad``
against ``jax.grad`` of the same scalar of the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtape import tensor

TOL = {"float64": 1e-10, "float32": 3e-5}


def is_float(a: np.ndarray) -> bool:
    return np.asarray(a).dtype.kind == "f"


def lift(arrays: Sequence[np.ndarray], backend: Any, dtype: str) -> list:
    return [tensor.from_numpy(np.asarray(a), backend, dtype) if is_float(a)
            else tensor.from_numpy(np.asarray(a), backend, requires_grad=False) for a in arrays]


def close(got: Any, want: Any, dtype: str, what: str) -> None:
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = max(1.0, float(np.nanmax(np.abs(want))) if want.size and not np.all(np.isnan(want)) else 1.0)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=what)


def compare(module: Any, reference: Callable, inputs: Sequence[np.ndarray], backend: Any, dtype: str, *,
            call: Callable | None = None, seed: int = 0) -> list:
    """Values and gradients of ``module`` against ``reference``; returns the jtape outputs."""
    xs = lift(inputs, backend, dtype)
    params = dict(module.named_parameters())
    outs = (call or (lambda m, *a: m(*a)))(module, *xs)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    rng = np.random.default_rng(seed)
    cts = [rng.standard_normal(tuple(o.shape)) for o in outs]

    float_idx = [i for i, a in enumerate(inputs) if is_float(a)]
    jparams = {k: jnp.asarray(p.numpy()) for k, p in params.items()}
    jin = [jnp.asarray(np.asarray(a).astype(dtype)) if is_float(a) else jnp.asarray(a) for a in inputs]

    def scalar(ps: dict, floats: list) -> Any:
        args = list(jin)
        for i, v in zip(float_idx, floats):
            args[i] = v
        r = reference(ps, *args)
        r = list(r) if isinstance(r, (tuple, list)) else [r]
        return sum(jnp.sum(o * c) for o, c in zip(r, cts)), r

    (_, ref_outs), (g_params, g_inputs) = jax.value_and_grad(scalar, argnums=(0, 1), has_aux=True)(
        jparams, [jin[i] for i in float_idx])
    assert len(ref_outs) == len(outs)
    for k, (o, r) in enumerate(zip(outs, ref_outs)):
        assert o.dtype.value == dtype, f"output {k} has dtype {o.dtype.value}, expected {dtype}"
        close(o.numpy(), r, dtype, f"output {k}")
    loss = None
    for o, c in zip(outs, cts):
        term = (o * tensor.from_numpy(c, backend, dtype, requires_grad=False)).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    for j, i in enumerate(float_idx):
        assert xs[i].grad is not None, f"input {i} got no gradient"
        close(xs[i].grad.numpy(), g_inputs[j], dtype, f"gradient of input {i}")
    for name, p in params.items():
        assert p.grad is not None, f"parameter {name} got no gradient"
        assert p.grad.dtype is p.dtype and tuple(p.grad.shape) == tuple(p.shape), name
        close(p.grad.numpy(), g_params[name], dtype, f"gradient of {name}")
    return outs


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)
