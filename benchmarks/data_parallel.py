"""Step throughput of the compiled tape, data parallel and with sharded parameters.

    python benchmarks/data_parallel.py                     # one process, 1/2/4 simulated CPU devices
    python benchmarks/data_parallel.py --real              # one process, the devices jax sees (e.g. GPUs)
    python benchmarks/data_parallel.py --processes 1,2,4   # 1, 2, 4 local processes (jtape.distributed)

The model is the MLP workload (784-512-512-10, global batch 256), trained with Adam, each step
with parameters replicated (data parallel) and sharded over the devices (``shard_params=True``,
ZeRO-3 / FSDP); the table also gives the bytes of parameters + Adam state each device holds.
Simulated CPU devices and local processes share the host's cores, so on a CPU this shows that
the partitioned program runs and what its collectives cost (Gloo over loopback between
processes), not a speed-up; on real devices it is the scaling figure. Variants run interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup(backend, batch: int, local_rows: slice):
    """The model pieces and this process's part of a fixed global batch."""
    import numpy as np

    from jtape import nn, optim, tensor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(np.float32)[local_rows]
    y = rng.integers(0, 10, batch).astype(np.int32)[local_rows]

    def make():
        model = nn.Sequential(nn.Linear(784, 512, backend, seed=0), nn.ReLU(), nn.Linear(512, 512, backend, seed=1),
                              nn.ReLU(), nn.Linear(512, 10, backend, seed=2))
        opt = optim.Adam(model.parameters(), lr=1e-3)

        def step(xb, yb):
            loss = model(xb).cross_entropy(yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        return model, opt, step
    return make, tensor.from_numpy(x, backend, requires_grad=False), tensor.from_numpy(y, backend)


def _time(variants: dict, x, y, repeats: int) -> dict:
    """Median seconds per step of each compiled variant, run interleaved after 3 warm-up steps."""
    import jax
    import numpy as np

    for compiled, _ in variants.values():
        for _ in range(3):
            compiled(x, y).data.block_until_ready()
    times: dict = {k: [] for k in variants}
    for _ in range(repeats):
        for k, (compiled, model) in variants.items():
            start = time.perf_counter()
            loss = compiled(x, y)
            jax.block_until_ready([loss.data] + [p.data for p in model.parameters()])
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def _variants(make, mesh) -> tuple[dict, dict]:
    """Replicated and sharded compiled steps on ``mesh``, and each one's bytes per device."""
    import jtape

    variants, held = {}, {}
    for label, shard in (("replicated", False), ("sharded", True)):
        model, opt, step = make()
        variants[label] = (jtape.jit(step, state=[model, opt], mesh=mesh, shard_params=shard), model)
        held[label] = (model, opt)
    return variants, held


def _bytes(held: dict) -> dict:
    from jtape import distributed
    return {k: max(distributed.bytes_per_device(*objs).values()) for k, objs in held.items()}


def worker(args: argparse.Namespace) -> None:
    """One process of the multi-process case (started by jtape.distributed.launch)."""
    from jtape import distributed
    distributed.initialize()
    from jtape import autodiff
    from jtape.backends import JaxBackend

    pid, nproc = distributed.process_index(), distributed.process_count()
    backend = autodiff.new(JaxBackend(distributed.local_device()))
    make, x, y = _setup(backend, args.batch, slice(pid * args.batch // nproc, (pid + 1) * args.batch // nproc))
    variants, held = _variants(make, distributed.global_mesh())
    medians = _time(variants, x, y, args.repeats)
    sizes = _bytes(held)  # after the steps: the arrays as the compiled step placed them
    if pid == 0:
        print("RESULT " + json.dumps({"processes": nproc, "median_s": medians, "bytes": sizes}), flush=True)


def multiprocess(args: argparse.Namespace) -> dict:
    rows = {}
    for n in [int(c) for c in args.processes.split(",")]:
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        if not args.real:
            env["JAX_PLATFORMS"] = "cpu"
        done = subprocess.run([sys.executable, "-m", "jtape.distributed.launch", "-n", str(n), "--timeout", "540",
                               __file__, "--worker", "--batch", str(args.batch), "--repeats", str(args.repeats)],
                              check=False, capture_output=True, text=True, env=env, timeout=600)
        found = [line for line in done.stdout.splitlines() if line.startswith("[0] RESULT ")]
        if done.returncode or not found:
            raise SystemExit(f"{n} process(es) failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
        rows[n] = json.loads(found[0][len("[0] RESULT "):])
    print(f"MLP 784-512-512-10 + Adam, global batch {args.batch}, one device per process, processes on one "
          f"{'host' if args.real else 'CPU host (shared cores: no speed-up expected)'}")
    _table(rows, "processes", args.batch)
    return rows


def one_process(args: argparse.Namespace) -> dict:
    if not args.real:
        if "jax" in sys.modules:
            raise SystemExit("run as a script: the simulated device count must be set before jax starts")
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
        os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import numpy as np
    from jax.sharding import Mesh

    from jtape import autodiff
    from jtape.backends import JaxBackend

    devices = jax.devices()
    backend = autodiff.new(JaxBackend(devices[0]))
    make, x, y = _setup(backend, args.batch, slice(None))
    rows, runs = {}, {}
    for n in [n for n in (1, 2, 4, 8) if n <= len(devices)]:
        variants, held = _variants(make, Mesh(np.array(devices[:n]), ("data",)))
        runs[n] = (variants, held)
    medians = _time({(n, k): v for n, (variants, _) in runs.items() for k, v in variants.items()}, x, y, args.repeats)
    for n, (_, held) in runs.items():
        rows[n] = {"median_s": {k: medians[(n, k)] for k in ("replicated", "sharded")}, "bytes": _bytes(held)}
    print(f"MLP 784-512-512-10 + Adam, global batch {args.batch}, one process, {devices[0].device_kind} "
          f"({'real' if args.real else 'simulated'} devices)")
    _table(rows, "devices", args.batch)
    return rows


def _table(rows: dict, what: str, batch: int) -> None:
    base = rows[min(rows)]["median_s"]["replicated"]
    print(f"| {what} | replicated: step ms | samples/s | × first | sharded: step ms | "
          f"params + Adam state per device, replicated → sharded |")
    print("|---|---|---|---|---|---|")
    for n, r in rows.items():
        rep, shard = r["median_s"]["replicated"], r["median_s"]["sharded"]
        full, part = r["bytes"]["replicated"], r["bytes"]["sharded"]
        print(f"| {n} | {rep * 1e3:.2f} | {batch / rep:,.0f} | {rep / base:.2f} | {shard * 1e3:.2f} | "
              f"{full / 2**20:.2f} MiB → {part / 2**20:.2f} MiB ({part / full:.2f}) |")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="use the real devices instead of simulated CPUs")
    parser.add_argument("--processes", default=None, help="comma-separated process counts, e.g. 1,2,4")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    return multiprocess(args) if args.processes else one_process(args)


if __name__ == "__main__":
    main()
