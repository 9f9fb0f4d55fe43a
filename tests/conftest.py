"""Test set-up: float64 needs JAX's x64 mode, switched on before any array exists."""

import jax

jax.config.update("jax_enable_x64", True)

import pytest  # noqa: E402


def make_inner(name: str):
    from jtape.backends import JaxBackend, NumpyBackend
    return JaxBackend("cpu") if name == "jax" else NumpyBackend()


@pytest.fixture(params=["jax", "numpy"])
def inner(request):
    """Each inner backend in turn."""
    return make_inner(request.param)


@pytest.fixture
def backend(inner):
    """A fresh AutodiffBackend (recording) over each inner backend."""
    from jtape import autodiff
    return autodiff.new(inner)
