"""Fuzzed shapes for every op of the spec table: a mismatch gives a jtape ``ShapeError`` (or
``DTypeError``) naming the op — never a raw NumPy/JAX error, never a result.

Each draw takes one of the op's samples and perturbs its input shapes (a size changed — to 0
or 1 too, a dim added, dropped or swapped). The op's independent reference decides what is a
mismatch: if ``jax.eval_shape`` of the reference rejects the shapes, jtape must reject them
too; if the reference accepts them, jtape may still refuse them (its contract can be stricter,
e.g. matmul needs rank >= 2) with a jtape error, or must return the reference's shapes.

Fresh draws every run: the run's seed (``JTAPE_SEED``, see ``tests/seeding.py``) is in every
failure message, and setting it replays the run.
"""

from __future__ import annotations

import functools
import re
import zlib

import jax
import numpy as np
import pytest
from spec import FLOATS, SPECS, OpSpec, np_dtype

from jtape import autodiff
from jtape.tensor import DTypeError, JtapeError, ShapeError

from ..seeding import RUN_SEED, replay_hint
from .support import as_list, new_backend

DRAWS_PER_OP = 30


def _dtype(spec: OpSpec) -> str:
    return next((d for d in FLOATS if d in spec.dtypes), spec.dtypes[0])


def _perturb(shapes: tuple, rng: np.random.Generator) -> tuple:
    """One to two random changes to the shapes: a size changed (to 0, 1 or a nearby size), a dim
    added, dropped, or two dims swapped."""
    out = [list(s) for s in shapes]
    for _ in range(int(rng.integers(1, 3))):
        i = int(rng.integers(len(out)))
        s = out[i]
        kind = rng.choice(["size", "size", "size", "add", "drop", "swap"])
        if kind == "size" and s:
            d = int(rng.integers(len(s)))
            s[d] = int(rng.choice([0, 1, 1, s[d] + 1, s[d] + 2, max(s[d] - 1, 0), 2 * s[d] + 1]))  # 1: broadcast-like
        elif kind == "add" and len(s) < 5:
            s.insert(int(rng.integers(len(s) + 1)), int(rng.integers(1, 4)))
        elif kind == "drop" and s:
            s.pop(int(rng.integers(len(s))))
        elif kind == "swap" and len(s) >= 2:
            a, b = rng.choice(len(s), 2, replace=False)
            s[a], s[b] = s[b], s[a]
    return tuple(tuple(s) for s in out)


def _reference_shapes(spec: OpSpec, shapes: tuple, dtypes: list, kwargs: dict) -> list | None:
    """The reference's output shapes for these input shapes, or None if the reference rejects them."""
    structs = [jax.ShapeDtypeStruct(s, np_dtype(d)) for s, d in zip(shapes, dtypes)]
    try:
        out = jax.eval_shape(functools.partial(spec.ref, **kwargs), *structs)
    except Exception:  # noqa: BLE001 — whatever the reference raises, these shapes do not fit the op
        return None
    return [tuple(o.shape) for o in as_list(out)]


def _outcome(spec: OpSpec, backend, shapes: tuple, dtypes: list, kwargs: dict):
    """('result', shapes) | ('jtape', error) | ('raw', error)."""
    tensors = [backend.from_numpy(np.zeros(s, np_dtype(d))) for s, d in zip(shapes, dtypes)]
    try:
        out = spec.run(backend, tensors, kwargs)
    except JtapeError as e:
        return "jtape", e
    except Exception as e:  # noqa: BLE001 — a raw error is what this test exists to catch
        return "raw", e
    return "result", [tuple(o.shape) for o in as_list(out)]


def _check(spec: OpSpec, shapes: tuple, kwargs: dict, where: str, backend) -> str | None:
    """A failure description, or None."""
    dtype = _dtype(spec)
    sample_dtypes = spec.input_dtypes(type(spec.samples[0])(shapes, kwargs), dtype)
    want = _reference_shapes(spec, shapes, sample_dtypes, kwargs)
    if want is not None and where == "jax":
        return None                  # valid shapes run a kernel: JaxBackend would compile one per draw
    kind, value = _outcome(spec, backend, shapes, sample_dtypes, kwargs)
    call = f"{spec.name} with shapes {shapes} and {kwargs} on {where}"
    if kind == "raw":
        return f"{call}: raw {type(value).__name__}: {value}"
    if kind == "result" and want is None:
        return f"{call}: returned shapes {value} although the shapes do not fit (the reference rejects them)"
    if kind == "result" and value != want:
        return f"{call}: returned shapes {value}; the reference gives {want}"
    if kind == "jtape" and want is None:
        if not isinstance(value, (ShapeError, DTypeError)):
            return f"{call}: raised {type(value).__name__}, expected ShapeError/DTypeError: {value}"
        if not re.match(rf"{re.escape(spec.name)}: ", str(value)):
            return f"{call}: the message does not start with the op's name: {value}"
    return None


def _draws(spec: OpSpec) -> list[tuple]:
    rng = np.random.default_rng([RUN_SEED, zlib.crc32(spec.name.encode())])
    samples = spec.samples_for(_dtype(spec))
    return [(_perturb(s.shapes, rng), s.kwargs) for s in (samples[int(rng.integers(len(samples)))]
                                                          for _ in range(DRAWS_PER_OP))]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_fuzzed_shapes_give_a_jtape_error_or_the_reference_result(spec: OpSpec) -> None:
    backends = {"numpy": new_backend("numpy"), "jax": new_backend("jax"),
                "autodiff(numpy)": autodiff.new(new_backend("numpy"))}
    failures = [f for shapes, kwargs in _draws(spec) for where, b in backends.items()
                if (f := _check(spec, shapes, kwargs, where, b))]
    assert not failures, "\n".join(failures[:10] + [replay_hint()])


MATMUL_INNER_ONE = [((3, 1), (4, 5)), ((3, 4), (1, 5)), ((2, 3, 1), (2, 4, 5)), ((2, 3, 4), (2, 1, 5)),
                    ((1, 1), (3, 2)), ((5, 4), (1, 1))]


@pytest.mark.parametrize("where", ["numpy", "jax", "autodiff(numpy)"])
@pytest.mark.parametrize("a, b", MATMUL_INNER_ONE, ids=[f"{a}@{b}" for a, b in MATMUL_INNER_ONE])
def test_matmul_with_an_inner_dim_of_one_on_one_side_is_a_mismatch(a, b, where):
    inner = new_backend("jax" if where == "jax" else "numpy")
    backend = autodiff.new(inner) if where.startswith("autodiff") else inner
    x, y = inner.from_numpy(np.zeros(a, np.float32)), inner.from_numpy(np.zeros(b, np.float32))
    with pytest.raises(ShapeError, match=re.escape(f"matmul: got shapes {a} and {b}; expected a.shape[-1] "
                                                   f"({a[-1]}) to equal b.shape[-2] ({b[-2]})")):
        backend.matmul(x, y)
