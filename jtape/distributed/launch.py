"""Start N local processes of one script as a multi-process jtape run (for demos and tests).

    python -m jtape.distributed.launch -n 2 script.py [script args ...]
    python -m jtape.distributed.launch -n 2 --cpu-devices 2 --timeout 300 script.py

Each process gets ``JTAPE_COORDINATOR_ADDRESS=127.0.0.1:<free port>``, ``JTAPE_NUM_PROCESSES``
and ``JTAPE_PROCESS_ID`` (what ``jtape.distributed.initialize()`` reads), its output is forwarded
line by line with a ``[i]`` prefix, and the launcher watches them:

* all exit 0: the launcher exits 0;
* one exits non-zero (or is killed): the others get ``--grace`` seconds to notice and fail on
  their own (they do: their next collective fails, or the heartbeat ends them), then are
  killed; the launcher exits with the first failure's code (128 + signal for a signal);
* ``--timeout`` passes: everything is killed and the launcher exits 124.

On a cluster, use the scheduler instead (one process per host under SLURM or torchrun); see
docs/distributed.md. Processes run in their own process groups, and "killed" means SIGTERM, then
SIGKILL two seconds later (JAX's preemption handler catches SIGTERM and keeps running). SIGTERM or
Ctrl-C to the launcher stops them all (exit 130); on Linux a child dies with the launcher.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from .env import PEER_FAILURE_EXIT_CODE


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _forward(stream: TextIO, prefix: str, out: TextIO, lock: threading.Lock) -> None:
    for line in iter(stream.readline, ""):
        with lock:
            out.write(f"{prefix}{line}" if line.endswith("\n") else f"{prefix}{line}\n")
            out.flush()
    stream.close()


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """SIGTERM each live process group, then SIGKILL what is left after 2 s."""
    live = [p for p in procs if p.poll() is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in live:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(p.poll() is None for p in live):
            time.sleep(0.05)
        live = [p for p in live if p.poll() is None]
        if not live:
            return


def _death_signal() -> Callable[[], None] | None:
    """For each child (Linux): be killed if the launcher itself dies, so no process outlives it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _code(rc: int) -> int:
    return 128 - rc if rc < 0 else rc


def launch(command: Sequence[str], n: int, *, timeout: float = 600.0, grace: float = 30.0, cpu_devices: int = 0,
           port: int | None = None, env: dict | None = None, out: TextIO | None = None) -> int:
    """Run ``command`` as ``n`` processes of one run; returns the exit code described above."""
    if n < 1:
        raise ValueError(f"jtape.distributed.launch: got -n {n}; expected at least 1 process")
    out = sys.stdout if out is None else out
    port = free_port() if port is None else port
    base = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1",
                JTAPE_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JTAPE_NUM_PROCESSES=str(n))
    if cpu_devices:
        flags = base.get("XLA_FLAGS", "")
        base["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cpu_devices}".strip()
        base.setdefault("JAX_PLATFORMS", "cpu")
    lock, procs, threads = threading.Lock(), [], []
    start, on_fork = time.monotonic(), _death_signal()
    for i in range(n):  # every child is started before any forwarding thread runs
        procs.append(subprocess.Popen(list(command), env=dict(base, JTAPE_PROCESS_ID=str(i)), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True,
                                      preexec_fn=on_fork))  # noqa: PLW1509 (no thread runs yet)
    for i, p in enumerate(procs):
        threads.append(threading.Thread(target=_forward, args=(p.stdout, f"[{i}] ", out, lock), daemon=True))
        threads[-1].start()

    def say(message: str) -> None:
        with lock:
            out.write(f"jtape.distributed.launch: {message}\n")
            out.flush()

    first: tuple[int, int, float] | None = None   # (process, code, when)
    ended: dict[int, float] = {}
    result = 0
    try:
        while True:
            now = time.monotonic()
            for i, p in enumerate(procs):
                if i not in ended and p.poll() is not None:
                    ended[i] = now
                    code = _code(p.returncode)
                    after = f"{now - first[2]:.1f} s after process {first[0]} failed, on its own" if first else \
                        f"after {now - start:.1f} s"
                    say(f"process {i} exited with code {code} {after}")
                    # The root cause: a process that saw a peer fail (PEER_FAILURE_EXIT_CODE) reports
                    # another's death, so a real failure found in the grace period replaces it.
                    if code and (first is None or (first[1] == PEER_FAILURE_EXIT_CODE != code)):
                        first = (i, code, now if first is None else first[2])
                        if len(ended) < n:
                            say(f"waiting up to {grace:g} s for the other processes to stop, then killing them")
            if len(ended) == n:
                result = first[1] if first else 0
                break
            if first is not None and now - first[2] > grace:
                say(f"killing processes {[i for i in range(n) if i not in ended]}, still running {grace:g} s after "
                    f"process {first[0]} failed")
                _stop(procs)
                result = first[1]
                break
            if now - start > timeout:
                say(f"timeout: {timeout:g} s passed; killing processes {[i for i in range(n) if i not in ended]}")
                _stop(procs)
                result = 124
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        say("interrupted; killing every process")
        _stop(procs)
        result = 130
    for i, p in enumerate(procs):
        if i not in ended:
            say(f"process {i} was killed by the launcher (code {_code(p.wait())})")
    for t in threads:
        t.join(timeout=5)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jtape.distributed.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--nproc", type=int, required=True, help="number of processes")
    parser.add_argument("--timeout", type=float, default=600.0, help="kill everything after this many seconds")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="after one process fails, how long the others may take to fail on their own")
    parser.add_argument("--cpu-devices", type=int, default=0,
                        help="simulate this many CPU devices per process (XLA_FLAGS), e.g. for a 2 x 2 mesh")
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
    parser.add_argument("script", help="the Python script every process runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = parser.parse_args(argv)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM to the launcher stops every process, as Ctrl-C does

    signal.signal(signal.SIGTERM, interrupted)
    return launch([sys.executable, a.script, *a.args], a.nproc, timeout=a.timeout, grace=a.grace,
                  cpu_devices=a.cpu_devices, port=a.port)


if __name__ == "__main__":
    sys.exit(main())
