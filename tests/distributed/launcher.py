"""Run ``python -m jtape.distributed.launch`` from a test: bounded, and never leaving processes behind.

The launcher kills its own processes at its ``--timeout``; this helper gives it a little longer,
then stops it with SIGTERM (it then kills every child) and, if that fails, SIGKILL (its children
die with it: they hold PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "worker.py"


def launch(args: list, n: int = 2, cpu_devices: int = 0, timeout: int = 150, grace: int = 60,
           env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``launch -n n [--cpu-devices k] args`` on loopback; returns its exit code and output."""
    command = [sys.executable, "-m", "jtape.distributed.launch", "-n", str(n), "--timeout", str(timeout),
               "--grace", str(grace)] + (["--cpu-devices", str(cpu_devices)] if cpu_devices else []) + \
              [str(a) for a in args]
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", **(env or {}))
    full_env.pop("XLA_FLAGS", None)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=full_env)
    try:
        out, _ = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        raise AssertionError(f"the launcher outlived its timeout of {timeout} s:\n{out[-6000:]}") from None
    return subprocess.CompletedProcess(command, proc.returncode, out, "")


def exit_line(out: str, process: int) -> re.Match | None:
    """The launcher's line on how ``process`` ended: groups (code, seconds, own)."""
    return re.search(rf"process {process} exited with code (-?\d+) (?:after ([\d.]+) s|([\d.]+) s after process "
                     rf"\d+ failed, on its own)", out)


def assert_bitwise_equal(files: list) -> None:
    """The arrays in ``files`` (one .npz per process) are bit for bit the same."""
    loaded = [np.load(f) for f in files]
    names = sorted(loaded[0].files)
    assert names and all(sorted(d.files) == names for d in loaded)
    for name in names:
        first = loaded[0][name]
        for other in loaded[1:]:
            assert first.dtype == other[name].dtype and first.tobytes() == other[name].tobytes(), name
