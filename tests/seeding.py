"""One fresh random seed per test run, for every randomized test (random programs, shape fuzz).

``tests/conftest.py`` draws it once per run (before xdist starts its workers, so every worker
sees the same one) and prints it in pytest's header. A failure message names it; to replay a
run, set it again::

    JTAPE_SEED=123456789 python -m pytest tests/autodiff/test_random_programs.py
"""

from __future__ import annotations

import os
import secrets

ENV = "JTAPE_SEED"


def ensure_run_seed() -> int:
    """The run's seed: ``$JTAPE_SEED`` if set, else a fresh one, stored in the environment so that
    subprocesses (xdist workers) inherit it."""
    if ENV not in os.environ:
        os.environ[ENV] = str(secrets.randbits(32))
    return int(os.environ[ENV])


RUN_SEED = ensure_run_seed()


def replay_hint() -> str:
    """The line a failure prints so that it can be replayed."""
    return f"random seed of this run: {ENV}={RUN_SEED} (set it to replay the same draws)"
