"""Test set-up: float64 needs JAX's x64 mode, switched on before any array exists."""

import jax

jax.config.update("jax_enable_x64", True)

import os

import pytest

from .seeding import ENV, ensure_run_seed

# JaxBackend's device in the tests: cpu unless JTAPE_TEST_DEVICE says otherwise (gpu_check.sh).
TEST_DEVICE = os.environ.get("JTAPE_TEST_DEVICE", "cpu")


def make_inner(name: str):
    from jtape.backends import JaxBackend, NumpyBackend
    return JaxBackend(TEST_DEVICE) if name == "jax" else NumpyBackend()


@pytest.fixture(params=["jax", "numpy"])
def inner(request):
    """Each inner backend in turn."""
    return make_inner(request.param)


@pytest.fixture
def backend(inner):
    """A fresh AutodiffBackend (recording) over each inner backend."""
    from jtape import autodiff
    return autodiff.new(inner)


def pytest_configure(config):
    """Draw the run's random seed before xdist starts its workers (they inherit the environment)."""
    ensure_run_seed()


def pytest_report_header(config):
    return f"jtape randomized tests: {ENV}={os.environ[ENV]} (set it to replay this run's draws)"
