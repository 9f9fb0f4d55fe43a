"""``python -m jtape.distributed.launch``: N processes with their settings, output forwarded,
one failure (or the timeout) stops them all. The children here are plain Python, no jax."""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from jtape.distributed.launch import free_port, launch

ROOT = Path(__file__).resolve().parents[2]
PRINT_ENV = ("import os; print('env', *(os.environ[k] for k in ('JTAPE_COORDINATOR_ADDRESS', "
             "'JTAPE_NUM_PROCESSES', 'JTAPE_PROCESS_ID')), os.environ.get('XLA_FLAGS', '-'))")


def _py(code: str) -> list:
    return [sys.executable, "-c", code]


def test_every_process_gets_its_settings_and_its_output_is_forwarded():
    out = io.StringIO()
    assert launch(_py(PRINT_ENV), 3, timeout=60, out=out, cpu_devices=2) == 0
    lines = sorted(re.findall(r"^\[(\d)\] env (\S+) (\d) (\d) (.*)$", out.getvalue(), re.MULTILINE))
    assert [(i, n, pid) for i, _, n, pid, _ in lines] == [("0", "3", "0"), ("1", "3", "1"), ("2", "3", "2")]
    addresses = {address for _, address, _, _, _ in lines}
    assert len(addresses) == 1 and addresses.pop().startswith("127.0.0.1:")
    assert all("--xla_force_host_platform_device_count=2" in flags for *_, flags in lines)
    assert out.getvalue().count("exited with code 0") == 3


def test_a_failure_stops_the_others_after_the_grace_period():
    code = "import os, sys, time\nif os.environ['JTAPE_PROCESS_ID'] == '1': sys.exit(3)\ntime.sleep(120)"
    out, start = io.StringIO(), time.monotonic()
    assert launch(_py(code), 2, timeout=100, grace=1.0, out=out) == 3
    assert time.monotonic() - start < 30, out.getvalue()
    text = out.getvalue()
    assert "process 1 exited with code 3" in text
    assert "killing processes [0], still running 1 s after process 1 failed" in text
    assert "process 0 was killed by the launcher" in text


def test_processes_that_fail_on_their_own_are_reported_so():
    code = ("import os, sys, time\npid = os.environ['JTAPE_PROCESS_ID']\n"
            "if pid == '1': sys.exit(3)\ntime.sleep(3); sys.exit(5)")  # 3 s: later than 1 even on a loaded box
    out = io.StringIO()
    assert launch(_py(code), 2, timeout=60, grace=30, out=out) == 3  # the first failure's code
    assert re.search(r"process 0 exited with code 5 [\d.]+ s after process 1 failed, on its own", out.getvalue())


def test_the_timeout_kills_everything():
    out, start = io.StringIO(), time.monotonic()
    assert launch(_py("import time; time.sleep(120)"), 2, timeout=1.0, out=out) == 124
    assert time.monotonic() - start < 30
    assert "timeout: 1 s passed; killing processes [0, 1]" in out.getvalue()


def test_a_killed_process_counts_as_a_failure():
    code = "import os, signal, time\nif os.environ['JTAPE_PROCESS_ID'] == '0': os.kill(os.getpid(), signal.SIGKILL)\n"
    out = io.StringIO()
    assert launch(_py(code), 2, timeout=60, out=out) == 128 + 9
    assert "process 0 exited with code 137" in out.getvalue()


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_command_line(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(PRINT_ENV + "\nimport sys; print('args', sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-m", "jtape.distributed.launch", "-n", "2", "--timeout", "60",
                           str(script), "--flag", "x"], check=False, capture_output=True, text=True, timeout=120,
                          cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[0] args ['--flag', 'x']" in done.stdout and "[1] env 127.0.0.1:" in done.stdout
