"""Where a process finds its place in a run: arguments, JTAPE_*, torchrun and SLURM variables."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jtape.distributed import DistributedError, initialize
from jtape.distributed.env import first_host, resolve

ROOT = Path(__file__).resolve().parents[2]


def test_jtape_variables():
    spec = resolve({"JTAPE_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JTAPE_NUM_PROCESSES": "4",
                    "JTAPE_PROCESS_ID": "3", "JTAPE_LOCAL_DEVICE_IDS": "0,1"})
    assert (spec.coordinator_address, spec.num_processes, spec.process_id) == ("10.0.0.1:1234", 4, 3)
    assert spec.local_device_ids == (0, 1) and spec.source == "JTAPE_*"
    assert (spec.coordinator_host, spec.coordinator_port) == ("10.0.0.1", 1234)


def test_arguments_win_over_the_environment():
    env = {"JTAPE_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JTAPE_NUM_PROCESSES": "4", "JTAPE_PROCESS_ID": "3"}
    spec = resolve(env, process_id=1, num_processes=2)
    assert (spec.coordinator_address, spec.num_processes, spec.process_id) == ("10.0.0.1:1234", 2, 1)
    assert spec.source == "JTAPE_*, arguments"


def test_torchrun_variables():
    env = {"MASTER_ADDR": "node7", "MASTER_PORT": "29500", "WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1",
           "LOCAL_WORLD_SIZE": "4"}
    spec = resolve(env)
    assert (spec.coordinator_address, spec.num_processes, spec.process_id) == ("node7:29500", 8, 5)
    assert spec.local_device_ids == (1,)  # one process per GPU: this one owns local device 1
    # Under torchrun itself its store holds MASTER_PORT, so the coordinator takes the next port.
    assert resolve(dict(env, TORCHELASTIC_RUN_ID="x")).coordinator_address == "node7:29501"
    assert resolve(dict(env, TORCHELASTIC_RUN_ID="x", JTAPE_COORDINATOR_PORT="4000")).coordinator_address == \
        "node7:4000"
    one_per_host = resolve(dict(env, LOCAL_WORLD_SIZE="1", LOCAL_RANK="0"))
    assert one_per_host.local_device_ids is None  # one process per host: it keeps every local device


def test_slurm_variables():
    env = {"SLURM_NTASKS": "16", "SLURM_PROCID": "9", "SLURM_STEP_NODELIST": "gpu[017-020,031],cpu1",
           "SLURM_JOB_ID": "123456"}
    spec = resolve(env)
    assert spec.coordinator_address == f"gpu017:{49152 + 123456 % 16384}"
    assert (spec.num_processes, spec.process_id, spec.source) == (16, 9, "SLURM")
    assert resolve(dict(env, JTAPE_COORDINATOR_PORT="7777")).coordinator_port == 7777
    # Every process of the job derives the same port from the job id.
    assert resolve(dict(env, SLURM_PROCID="0")).coordinator_address == spec.coordinator_address


@pytest.mark.parametrize("nodelist, host", [("node001", "node001"), ("node001,node002", "node001"),
                                            ("node[001-015],h2", "node001"), ("n[7,9-12]", "n7"),
                                            ("a-b[3]", "a-b3")])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_missing_settings_name_what_is_missing():
    with pytest.raises(DistributedError, match="no coordinator_address, num_processes, process_id given"):
        resolve({})
    with pytest.raises(DistributedError, match="no process_id given"):
        resolve({"JTAPE_COORDINATOR_ADDRESS": "h:1", "WORLD_SIZE": "2"})
    with pytest.raises(DistributedError, match="no coordinator_address"):
        initialize(env={})  # fails before jax is touched


@pytest.mark.parametrize("env, message", [
    ({"JTAPE_NUM_PROCESSES": "two"}, "JTAPE_NUM_PROCESSES='two'; expected an integer"),
    ({"JTAPE_PROCESS_ID": "2", "JTAPE_NUM_PROCESSES": "2"},
     r"process_id=2 \(from JTAPE_\*\); expected an integer in \[0, 2\)"),
    ({"JTAPE_NUM_PROCESSES": "0"}, "num_processes=0"),
    ({"JTAPE_COORDINATOR_ADDRESS": "localhost"}, "coordinator address 'localhost'.*expected 'host:port'"),
    ({"JTAPE_COORDINATOR_ADDRESS": "h:70000"}, "out of range"),
    ({"JTAPE_LOCAL_DEVICE_IDS": "0;1"}, "JTAPE_LOCAL_DEVICE_IDS='0;1'"),
])
def test_malformed_settings(env, message):
    base = {"JTAPE_COORDINATOR_ADDRESS": "127.0.0.1:5000", "JTAPE_NUM_PROCESSES": "2", "JTAPE_PROCESS_ID": "0"}
    with pytest.raises(DistributedError, match=message):
        resolve(dict(base, **env))


def test_initialize_after_jax_started_says_so():
    code = ("import jax; jax.devices()\n"
            "from jtape import distributed\n"
            "try:\n"
            "    distributed.initialize('127.0.0.1:1', 1, 0)\n"
            "except distributed.DistributedError as e:\n"
            "    print('ERROR', e)\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                          cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stderr
    assert "ERROR" in done.stdout and "expected initialize() first" in done.stdout, done.stdout


def test_which_errors_are_peer_failures(monkeypatch):
    from jtape.distributed import PeerFailure, runtime
    from jtape.tensor.errors import ShapeError

    monkeypatch.setitem(runtime._state, "peer_failed", False)
    gloo = ValueError("UNKNOWN: Gloo all-reduce failed: [pair.cc:538] Read error [127.0.0.1]:1: Connection reset by peer")
    failure = runtime.peer_failure(gloo)
    assert isinstance(failure, PeerFailure) and runtime._state["peer_failed"]  # the process will exit with 75
    assert "another process of the run probably died" in str(failure) and "Connection reset by peer" in str(failure)
    assert runtime.peer_failure(failure) is failure
    monkeypatch.setitem(runtime._state, "peer_failed", False)
    for other in (ValueError("the collective step got shapes (2,) and (3,)"),   # not from the runtime
                  ShapeError("UNKNOWN: gloo"), TypeError("UNAVAILABLE: collective"),  # jtape's own / tracing
                  RuntimeError("INTERNAL: out of memory")):                        # the runtime, not a peer
        assert runtime.peer_failure(other) is None, other
    assert not runtime._state["peer_failed"]
