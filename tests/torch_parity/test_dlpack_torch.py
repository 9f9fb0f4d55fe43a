"""torch imports jtape tensors through DLPack (the ``bench`` extra's torch; run with ``-m torch``).
torch is imported inside the tests (a fixture), so collecting this file never needs it: without the
extra the default run deselects these tests instead of skipping the module."""

import numpy as np
import pytest

from jtape import tensor

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def torch():
    import torch
    return torch


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "bool"])
def test_torch_from_dlpack_reads_a_tensor(backend, dtype, torch):
    values = np.arange(6).reshape(2, 3) % 2 if dtype == "bool" else np.arange(6).reshape(2, 3)
    t = tensor.from_numpy(values, backend, dtype, requires_grad=False)
    tt = torch.from_dlpack(t)
    assert tuple(tt.shape) == (2, 3) and str(tt.dtype) == f"torch.{dtype}"
    np.testing.assert_array_equal(tt.numpy(), t.numpy())


def test_torch_from_dlpack_of_a_computed_tensor(backend, torch):
    x = tensor.from_numpy(np.array([1.0, 2.0, 3.0], np.float32), backend)
    y = (x * x).exp()                          # a deferred value runs before it is exported
    np.testing.assert_allclose(torch.from_dlpack(y).numpy(), np.exp([1.0, 4.0, 9.0]), rtol=1e-6)
