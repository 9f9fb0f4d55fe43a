"""One process of a multi-process test run (started by ``python -m jtape.distributed.launch``).

    worker.py train  OUT                      20 Adam steps, data parallel and sharded, vs one device
    worker.py die    OUT --die-at K --ckpt-at C [--victim P] [--freeze]   sharded run; checkpoint at
          C; process P (default 1) dies (or freezes: SIGSTOP) before step K
    worker.py resume OUT                      resume that checkpoint to step 20, vs one device

Every process trains on its own quarter/half of each global batch; a reference model trains on
the whole batch on this process's first device with no mesh. Each process checks its own
results and writes ``OUT/params_<process>.npz`` and ``OUT/report_<process>.json`` for the test
to compare across processes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import jtape
from jtape import distributed

STEPS, BATCH, TOL = 20, 32, 1e-5


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    opts = sys.argv[3:]
    spec = distributed.initialize()
    import jax
    import numpy as np

    from jtape import autodiff, nn, optim, tensor
    from jtape.backends import JaxBackend

    pid, nproc = spec.process_id, spec.num_processes
    mesh = distributed.global_mesh()
    backend = autodiff.new(JaxBackend(distributed.local_device()))

    def make():
        model = nn.Sequential(nn.Linear(16, 64, backend, seed=0), nn.ReLU(), nn.Linear(64, 10, backend, seed=1))
        return model, optim.Adam(model.parameters(), lr=0.01)

    def body(model, opt):
        def step(x, y):
            loss = model(x).cross_entropy(y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        return step

    def batch(i: int, local: bool):
        rng = np.random.default_rng(1000 + i)  # every process can draw step i's global batch; it keeps its part
        x = rng.standard_normal((BATCH, 16)).astype(np.float32)
        y = rng.integers(0, 10, BATCH).astype(np.int32)
        if local:
            part = slice(pid * BATCH // nproc, (pid + 1) * BATCH // nproc)
            x, y = x[part], y[part]
        return (tensor.from_numpy(x, backend, requires_grad=False), tensor.from_numpy(y, backend))

    def host(model) -> dict:
        return {name: distributed.to_host(p.data) for name, p in model.named_parameters()}

    def worst(a: dict, b: dict) -> float:
        return max(float(np.max(np.abs(a[k] - b[k]))) / max(1.0, float(np.max(np.abs(a[k])))) for k in a)

    def reference() -> dict:
        """The parameters of a one-device model trained on the whole batch, no mesh."""
        ref_model, ref_opt = make()
        ref = jtape.jit(body(ref_model, ref_opt), state=[ref_model, ref_opt])
        for i in range(STEPS):
            ref(*batch(i, local=False))
        return host(ref_model)

    report: dict = {"process": pid, "processes": nproc, "devices": len(jax.devices()),
                    "local_devices": len(jax.local_devices())}

    if mode == "train":
        expected, results = reference(), {}
        for label, shard in (("replicated", False), ("sharded", True)):
            model, opt = make()
            step = jtape.jit(body(model, opt), state=[model, opt], mesh=mesh, shard_params=shard)
            for i in range(STEPS):
                loss = step(*batch(i, local=True))
            got = host(model)
            err = worst(expected, got)
            assert err <= TOL, (label, err)
            w = model.parameters()[0].data
            assert len(w.sharding.device_set) == len(jax.devices()), w.sharding
            assert w.sharding.is_fully_replicated == (not shard), w.sharding
            per_device = distributed.bytes_per_device(model, opt)
            hlo = step.lower(*batch(0, local=True)).compile().as_text()
            results[label] = {"worst": err, "loss": loss.item(), "bytes": sorted(per_device.values()),
                              "collectives": dict(distributed.collectives(hlo)),
                              "gathered": _gathered(hlo),
                              "split_params": sorted(f"f32[{','.join(map(str, p.shape))}]" for p in model.parameters()
                                                     if not p.data.sharding.is_fully_replicated)}
            np.savez(out / f"params_{label}_{pid}.npz", **got)
        report.update(results)
    elif mode == "die":
        die_at, ckpt_at = int(opts[opts.index("--die-at") + 1]), int(opts[opts.index("--ckpt-at") + 1])
        victim = int(opts[opts.index("--victim") + 1]) if "--victim" in opts else 1
        model, opt = make()
        step = jtape.jit(body(model, opt), state=[model, opt], mesh=mesh, shard_params=True)
        for i in range(STEPS):
            if i == ckpt_at:
                distributed.save_checkpoint(out / "ckpt.npz", model, opt, step=i)
                print(f"checkpoint at step {i}", flush=True)
            if i == die_at and pid == victim:
                if "--freeze" in opts:  # alive but silent: no heartbeats, no collectives, sockets open
                    print(f"process {pid} freezes before step {i}", flush=True)
                    os.kill(os.getpid(), signal.SIGSTOP)
                print(f"process {pid} dies before step {i}", flush=True)
                os._exit(3)
            step(*batch(i, local=True)).item()
        raise AssertionError(f"the run went on without process {victim}")
    elif mode == "resume":
        expected = reference()
        model, opt = make()
        start = distributed.load_checkpoint(out / "ckpt.npz", model, opt)
        # Without the optimizer's state (Adam's moments and step count) the same resume lands elsewhere.
        stale_model, stale_opt = make()
        distributed.load_checkpoint(out / "ckpt.npz", stale_model)
        stale = jtape.jit(body(stale_model, stale_opt), state=[stale_model, stale_opt])
        step = jtape.jit(body(model, opt), state=[model, opt], mesh=mesh, shard_params=True)
        for i in range(start, STEPS):
            step(*batch(i, local=True))
            stale(*batch(i, local=False))
        got = host(model)
        report.update(start=start, worst=worst(expected, got), stale_worst=worst(expected, host(stale_model)),
                      optimizer_steps=opt.steps)
        assert report["worst"] <= TOL and report["stale_worst"] > 100 * TOL and opt.steps == STEPS, report
        np.savez(out / f"params_resumed_{pid}.npz", **got)
    else:
        raise SystemExit(f"worker.py: unknown mode {mode!r}; expected train, die or resume")
    (out / f"report_{pid}.json").write_text(json.dumps(report))
    print(f"OK process {pid}: {json.dumps(report)}", flush=True)


def _gathered(hlo: str) -> list:
    """The result shapes of the HLO's all-gathers, e.g. ``f32[64,16]``."""
    import re
    return sorted(set(re.findall(r"= (\w+\[[\d,]*\])\S* all-gather(?:-start)?\(", hlo)))


if __name__ == "__main__":
    main()
