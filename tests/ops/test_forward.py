"""Forward: every op x dtype x sample of the spec table, on each plain (non-autodiff) backend,
equals its independent jax.numpy reference, with the reference's shape and dtype."""

from __future__ import annotations

import numpy as np
import pytest

from .support import (
    BACKEND_NAMES,
    BACKENDS,
    Case,
    as_list,
    assert_close,
    check_array,
    forward_cases,
    inputs,
    reference,
    reference_values,
)

CASES = forward_cases()


def run(case: Case, backend_name: str) -> list:
    backend = BACKENDS[backend_name]
    tensors = [backend.from_numpy(a) for a in inputs(case)]
    return as_list(case.spec.run(backend, tensors, case.kwargs))


@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_reference(case: Case, backend_name: str) -> None:
    outs = run(case, backend_name)
    expected, values = reference(case), reference_values(case)
    assert len(outs) == len(expected)
    for i, (out, ref, val) in enumerate(zip(outs, expected, values)):
        what = f"{case.id} on {backend_name}, output {i}"
        assert tuple(out.shape) == ref.shape, f"{what}: RawTensor.shape {tuple(out.shape)}; reference {ref.shape}"
        assert out.dtype.numpy == ref.dtype, f"{what}: RawTensor.dtype {out.dtype}; reference {ref.dtype}"
        check_array(out, backend_name)
        assert_close(np.asarray(out.data), val, out.dtype.value, what)


@pytest.mark.slow          # each backend already matches the reference (above); CI runs this too
@pytest.mark.parametrize("case", CASES)
def test_backends_agree(case: Case) -> None:
    jax_outs, numpy_outs = run(case, "jax"), run(case, "numpy")
    assert len(jax_outs) == len(numpy_outs)
    for i, (j, n) in enumerate(zip(jax_outs, numpy_outs)):
        assert (tuple(j.shape), j.dtype) == (tuple(n.shape), n.dtype), f"{case.id}, output {i}"
        assert_close(np.asarray(n.data), np.asarray(j.data), j.dtype.value, f"{case.id}, output {i}: numpy vs jax")
