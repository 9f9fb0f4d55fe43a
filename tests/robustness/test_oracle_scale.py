"""The randomized oracle at scale: random programs of 5–50 ops drawn over every op family, run
on the tape over each inner backend, against ``jax.grad`` of the same program in plain
``jax.numpy`` (see ``oracle_programs.py``).

Default: 25 examples per inner backend (50 in all). ``JTAPE_LONG_ORACLE=1``: 2,500 per inner
backend (5,000 in all). Either way the run ends with a line of counts: examples run per
backend, and ops drawn per family.

Fresh programs every run: hypothesis is seeded with the run's seed (``JTAPE_SEED``, see
``tests/seeding.py``), which a failure prints; setting it replays the run.
"""

from __future__ import annotations

import os
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

from jtape import autodiff, tensor

from ..conftest import make_inner
from ..seeding import RUN_SEED, replay_hint
from .oracle_programs import BATCHES, FAMILIES, OPS, draw, jnp_env, run, tape_env

LONG = os.environ.get("JTAPE_LONG_ORACLE") == "1"
PER_BACKEND = 2500 if LONG else 25
STATS = {"examples": Counter(), "families": Counter(), "ops": Counter(), "lengths": [], "batches": Counter()}

_step = st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
# The length first, uniform in 5..50 (st.lists alone would mostly draw short programs).
programs = st.integers(5, 50).flatmap(lambda n: st.lists(_step, min_size=n, max_size=n))


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    if not STATS["examples"]:
        return
    families = ", ".join(f"{f} {STATS['families'][f]}" for f in FAMILIES)
    text = (f"[oracle] examples run: {dict(STATS['examples'])} ({sum(STATS['examples'].values())} in all); "
            f"ops drawn per family: {families}; {sum(STATS['ops'].values())} ops, program lengths "
            f"{min(STATS['lengths'])}..{max(STATS['lengths'])} (mean {np.mean(STATS['lengths']):.1f}), "
            f"batch sizes {dict(STATS['batches'])}; {replay_hint()}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print("\n" + text)


_INNER: dict = {}


def check_program(inner_name: str, program: list, data_seed: int, batch: int = 2, count: bool = True) -> None:
    data = draw(data_seed, len(program) + 2, batch)
    # One inner backend per kind for the whole run (a JaxBackend keeps its compiled rule kernels),
    # a fresh AutodiffBackend (and tape) per example.
    inner = _INNER.setdefault(inner_name, make_inner(inner_name))
    backend = autodiff.new(inner)
    a, b, k = (tensor.from_numpy(data[n], backend) for n in ("a", "b", "kernel"))
    weights = [tensor.from_numpy(w, backend, requires_grad=False) for w in data["weights"]]
    loss = run(program, [a, b], tape_env(backend, data, k), weights, "tape")
    grads = backend.tape().gradient(loss, [a, b, k], unconnected_gradients="zero")

    def oracle(a, b, k):
        return run(program, [a, b], jnp_env(data, k), [jnp.asarray(w) for w in data["weights"]], "jnp")

    want_loss, want = jax.value_and_grad(oracle, argnums=(0, 1, 2))(*(jnp.asarray(data[n]) for n in ("a", "b", "kernel")))
    # A cast to float32 and back rounds; later ops see float32-level differences.
    tol = 1e-5 if any(step[0] == "cast" for step in program) else 1e-9
    np.testing.assert_allclose(loss.item(), float(want_loss), rtol=tol, atol=tol)
    for name, got, ref in zip("abk", grads, want):
        got, ref = got.numpy(), np.asarray(ref)
        assert got.shape == ref.shape and got.dtype == ref.dtype == np.float64, name
        assert np.all(np.isfinite(ref)), f"the oracle's gradient for {name} is not finite"
        scale = max(1.0, float(np.max(np.abs(ref))))
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale, err_msg=f"gradient for {name}")
    if not count:
        return
    STATS["examples"][inner_name] += 1
    STATS["families"].update(OPS[step[0]][0] for step in program)
    STATS["ops"].update(step[0] for step in program)
    STATS["lengths"].append(len(program))
    STATS["batches"][batch] += 1


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
@seed(RUN_SEED)
@settings(max_examples=PER_BACKEND, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(program=programs, data_seed=st.integers(0, 2**32 - 1), batch=st.sampled_from(BATCHES))
def test_random_programs_over_every_op_family_match_jax_grad(inner_name, program, data_seed, batch):
    note(replay_hint())
    check_program(inner_name, program, data_seed, batch)


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
def test_one_program_with_every_op_matches_jax_grad(inner_name):
    """Every op of the table at least once, whatever hypothesis draws, reading earlier values in a
    fixed pseudo-random pattern."""
    rng = np.random.default_rng(7)
    program = [(name, int(rng.integers(10**6)), int(rng.integers(10**6)), int(rng.integers(10**6)))
               for name in sorted(OPS)]
    check_program(inner_name, program, data_seed=3, count=False)
    assert {OPS[name][0] for name, *_ in program} == set(FAMILIES) == {
        "arithmetic", "scalar", "unary", "activation", "matmul", "conv", "loss", "reduction", "shape",
        "indexing", "cast", "powers", "piecewise", "unary2", "activation2", "reduction2", "layout", "indexing2",
        "einsum", "conv2"}


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
@pytest.mark.parametrize("layout", ["triu", "tril"])
def test_std_after_a_layout_op_that_zeroes_rows_stays_where_both_have_a_derivative(inner_name, layout):
    """A run drew abs, triu, std (JTAPE_SEED=1783232214): triu zeroed a whole row, whose std is 0,
    where sqrt has no derivative — the oracle's gradient was NaN and the test failed on the oracle.
    Every dim std reduces over, after each diagonal triu and tril take, at each batch size."""
    for p in range(6):                       # _inner_dim(p): dims 1, 2, 3 and -3, -2, -1
        for diagonal in range(3):            # (p % 3 - 1: -1, 0, 1)
            for batch in BATCHES:
                program = [("abs", 0, 0, 0), (layout, 2, 2, diagonal), ("std", 3, 3, p)]   # each reads the last
                check_program(inner_name, program, data_seed=0, batch=batch, count=False)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["triu", "tril"])
def test_every_op_after_a_layout_op_that_zeroes_rows_matches_jax_grad(layout):
    """The family of the case above: each op of the table reading the output of triu or tril at each
    diagonal (rows and columns of zeros: ties for max/min, zeros for sqrt/log-like ops, constant
    rows for std and norm), for each static the op's ``p`` picks from."""
    for name in sorted(OPS):
        for diagonal in range(3):
            for p in range(6):
                check_program("jax", [("abs", 0, 0, 0), (layout, 2, 2, diagonal), (name, 3, 3, p)],
                              data_seed=0, batch=1, count=False)
