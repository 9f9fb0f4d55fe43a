"""Real processes on loopback: 2 × 1 and 2 × 2 CPU devices, data parallel and sharded parameters.

Each run starts two processes with ``python -m jtape.distributed.launch``; every process trains
a small MLP 20 Adam steps on its own part of each batch, once with replicated and once with
sharded parameters, and checks them against a one-device model trained on the whole batch
(tests/distributed/worker.py). Here the processes' results are compared with each other.
"""

import json

import pytest

from .launcher import ROOT, WORKER, assert_bitwise_equal, launch

TOL = 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("devices_per_process", [1, 2])
def test_two_processes_train_like_one_device(tmp_path, devices_per_process):
    done = launch([WORKER, "train", tmp_path], n=2, cpu_devices=devices_per_process if devices_per_process > 1 else 0)
    assert done.returncode == 0, done.stdout[-8000:]
    reports = [json.loads((tmp_path / f"report_{i}.json").read_text()) for i in range(2)]
    n = 2 * devices_per_process
    for report in reports:
        assert (report["devices"], report["local_devices"]) == (n, devices_per_process)
        rep, shard = report["replicated"], report["sharded"]
        assert rep["worst"] <= TOL and shard["worst"] <= TOL, report
        # Data parallel: gradients averaged by an all-reduce; no parameter is gathered.
        assert rep["collectives"].get("all-reduce", 0) >= 1 and rep["split_params"] == []
        assert not any(s.startswith("f32") for s in rep["gathered"]), rep["gathered"]
        # Sharded: every split parameter is all-gathered whole; its gradient reduced (on CPU an
        # all-reduce followed by a per-device slice, elsewhere a reduce-scatter).
        assert shard["split_params"] and set(shard["split_params"]) <= set(shard["gathered"]), shard
        assert shard["collectives"].get("all-reduce", 0) + shard["collectives"].get("reduce-scatter", 0) >= 1
        # Bytes of parameters + Adam state on each device: all of it replicated, ~1/N sharded.
        full = set(rep["bytes"])
        assert len(full) == 1
        full = full.pop()
        assert all(full / n <= b <= 1.05 * full / n for b in shard["bytes"]), (full, shard["bytes"])
    assert reports[0]["replicated"]["loss"] == reports[1]["replicated"]["loss"]
    for label in ("replicated", "sharded"):
        assert_bitwise_equal([tmp_path / f"params_{label}_{i}.npz" for i in range(2)])


@pytest.mark.slow
def test_example_runs_in_two_processes(tmp_path):
    done = launch([ROOT / "examples" / "multiprocess.py", "--steps", "60", "--shard-params",
                   "--checkpoint", tmp_path / "ckpt.npz"], n=2)
    assert done.returncode == 0, done.stdout[-8000:]
    out = done.stdout
    assert "[0] 2 process(es), 2 device(s)" in out and "[1] process 1: done" in out
    accuracy = float(out.split("held-out accuracy ")[1].split(";")[0])
    assert accuracy > 0.85, out
    assert (tmp_path / "ckpt.npz").exists()
