"""A process that dies (or freezes) mid-run ends the others within bounded time, with a clear
error; the checkpoint written before the failure resumes the run to the one-device parameters."""

import json

import pytest

from .launcher import WORKER, assert_bitwise_equal, exit_line, launch

FAST = {"JTAPE_HEARTBEAT_TIMEOUT_S": "5", "JTAPE_COLLECTIVE_TIMEOUT_S": "60"}


@pytest.mark.slow
def test_dead_process_fails_the_run_and_the_checkpoint_resumes_it(tmp_path):
    done = launch([WORKER, "die", tmp_path, "--die-at", "12", "--ckpt-at", "10"], env=FAST)
    out = done.stdout
    assert done.returncode == 3, out[-8000:]  # the launcher reports the first failure: process 1's exit
    assert "[1] process 1 dies before step 12" in out
    survivor = exit_line(out, 0)
    # Process 0 stopped on its own — after the launcher saw process 1 end, or first, when its failed
    # collective ended it before the launcher noticed process 1's exit (a race; either is right) —
    # soon, and with jtape's exit code; the launcher killed nobody.
    assert survivor is not None, out[-8000:]
    assert "was killed by the launcher" not in out, out[-8000:]
    assert float(survivor.group(3) or survivor.group(2)) < 30, survivor.group(0)
    assert int(survivor.group(1)) == 75, survivor.group(0)
    assert "[0] jtape.distributed.PeerFailure: jtape.distributed: process 0 of 2: a collective of the compiled " \
           "step failed — another process of the run probably died" in out
    assert (tmp_path / "ckpt.npz").exists()

    resumed = launch([WORKER, "resume", tmp_path])
    assert resumed.returncode == 0, resumed.stdout[-8000:]
    for i in range(2):
        report = json.loads((tmp_path / f"report_{i}.json").read_text())
        assert report["start"] == 10 and report["optimizer_steps"] == 20
        assert report["worst"] <= 1e-5, report                 # the uninterrupted one-device parameters
        assert report["stale_worst"] > 1e-3, report            # which need the optimizer's saved state
    assert_bitwise_equal([tmp_path / f"params_resumed_{i}.npz" for i in range(2)])


@pytest.mark.slow
def test_death_of_the_coordinator_ends_the_other_process(tmp_path):
    done = launch([WORKER, "die", tmp_path, "--die-at", "3", "--ckpt-at", "99", "--victim", "0"], env=FAST)
    out = done.stdout
    assert done.returncode == 3, out[-8000:]
    survivor = exit_line(out, 1)
    assert survivor is not None and survivor.group(3) is not None and float(survivor.group(3)) < 30, out[-8000:]
    assert int(survivor.group(1)) != 0
    # Which notices first is a race: the failed collective (jtape's PeerFailure) or JAX's runtime,
    # which ends a process whose coordinator is gone.
    assert "jtape.distributed.PeerFailure" in out or "JAX distributed service detected fatal errors" in out


@pytest.mark.slow
@pytest.mark.parametrize("bound", ["heartbeat", "collective timeout"])
def test_frozen_process_ends_the_run(tmp_path, bound):
    # A frozen process (SIGSTOP) keeps its sockets open: the others wait in the collective until
    # the first bound passes — its heartbeats stop (JAX ends the others) or, on CPU, the collective
    # times out (jtape's PeerFailure).
    env = FAST if bound == "heartbeat" else {"JTAPE_HEARTBEAT_TIMEOUT_S": "100", "JTAPE_COLLECTIVE_TIMEOUT_S": "5"}
    done = launch([WORKER, "die", tmp_path, "--die-at", "3", "--ckpt-at", "99", "--freeze"], env=env, grace=2)
    out = done.stdout
    assert "[1] process 1 freezes before step 3" in out
    survivor = exit_line(out, 0)
    assert survivor is not None and int(survivor.group(1)) != 0, out[-8000:]
    if bound == "heartbeat":
        assert "stopped sending heartbeats" in out or "heartbeat timeout" in out, out[-8000:]
    else:
        assert int(survivor.group(1)) == 75 and "[0] jtape.distributed.PeerFailure" in out, out[-8000:]
        assert "Timed out waiting 5000ms" in out
    assert "process 1 was killed by the launcher" in out  # frozen processes do not end by themselves
    assert done.returncode != 0
