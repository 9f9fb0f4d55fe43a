"""Step throughput of the compiled tape over 1, 2 and 4 devices (data parallel).

    python benchmarks/data_parallel.py                # 4 simulated CPU devices
    python benchmarks/data_parallel.py --real         # the devices jax sees (e.g. several GPUs)

The model is the MLP workload (784-512-512-10, global batch 256). Simulated CPU devices share
the host's cores, so on a CPU this shows the partitioned program runs and what the collectives
cost, not a speed-up; on real devices it is the scaling figure. Variants run interleaved.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="use the real devices instead of 4 simulated CPUs")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args(argv)
    if not args.real:
        if "jax" in sys.modules:
            raise SystemExit("run as a script: the simulated device count must be set before jax starts")
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
        os.environ["JAX_PLATFORMS"] = "cpu"

    import jax
    import numpy as np
    from jax.sharding import Mesh

    import jtape
    from jtape import autodiff, nn, optim, tensor
    from jtape.backends import JaxBackend

    devices = jax.devices()
    counts = [n for n in (1, 2, 4, 8) if n <= len(devices)]
    backend = autodiff.new(JaxBackend(devices[0]))
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((args.batch, 784)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 10, args.batch).astype(np.int32), backend)
    steps = {}
    for n in counts:
        model = nn.Sequential(nn.Linear(784, 512, backend, seed=0), nn.ReLU(), nn.Linear(512, 512, backend, seed=1),
                              nn.ReLU(), nn.Linear(512, 10, backend, seed=2))
        opt = optim.SGD(model.parameters(), lr=0.01)

        def step(xb, yb, model=model, opt=opt):
            loss = model(xb).cross_entropy(yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        mesh = Mesh(np.array(devices[:n]), ("data",))
        compiled = jtape.jit(step, state=[model, opt], mesh=mesh)
        for _ in range(3):
            compiled(x, y).data.block_until_ready()
        steps[n] = (compiled, model)
    times: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(args.repeats):
        for n, (compiled, model) in steps.items():
            start = time.perf_counter()
            loss = compiled(x, y)
            jax.block_until_ready([loss.data] + [p.data for p in model.parameters()])
            times[n].append(time.perf_counter() - start)
    result = {"devices": str(devices[0].device_kind), "batch": args.batch, "per_device_count": {}}
    base = float(np.median(times[1]))
    print(f"MLP 784-512-512-10, global batch {args.batch}, {devices[0].device_kind} "
          f"({'real' if args.real else 'simulated'} devices)")
    print("| devices | median step ms | samples/s | × 1-device time |")
    print("|---|---|---|---|")
    for n in counts:
        med = float(np.median(times[n]))
        result["per_device_count"][n] = {"median_s": med, "samples_per_s": args.batch / med}
        print(f"| {n} | {med * 1e3:.2f} | {args.batch / med:,.0f} | {med / base:.2f} |")
    return result


if __name__ == "__main__":
    main()
