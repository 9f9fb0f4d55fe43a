"""Data-parallel training of the compiled tape through jax.sharding.

The digits MLP, trained with ``jtape.jit(step, state=[model, opt], mesh=mesh)``: the batch is
split over the devices of a ``jax.sharding.Mesh``, parameters and optimizer state are
replicated, and XLA's SPMD partitioner inserts the all-reduce that averages the gradients.
The step itself is the ordinary single-device step — the same code runs on one CPU, several
GPUs or a TPU slice.

Run:  python examples/data_parallel.py                 # every device jax sees
      python examples/data_parallel.py --simulate 4    # 4 CPU devices on one host (for trying it out)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulate", type=int, default=0, help="pretend the CPU is N devices (before jax starts)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch, split over the devices")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.simulate:
        if "jax" in sys.modules and len(sys.modules["jax"].devices()) != args.simulate:
            raise SystemExit("--simulate must be set before jax starts (run this file as a script)")
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.simulate}"
        os.environ.setdefault("JAX_PLATFORMS", "cpu")

    import jax
    import numpy as np
    from jax.sharding import Mesh

    import jtape
    from jtape import autodiff, nn, optim, tensor
    from jtape.backends import JaxBackend

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from digits_cnn import load_digits_split

    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("data",))                  # one mesh axis: the data axis
    backend = autodiff.new(JaxBackend(devices[0]))
    model = nn.Sequential(nn.Linear(64, 128, backend, seed=args.seed), nn.ReLU(),
                          nn.Linear(128, 10, backend, seed=args.seed + 1))
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    @jtape.jit(state=[model, opt], mesh=mesh)                  # the only data-parallel line
    def train_step(x: Any, y: Any) -> Any:
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    x_train, x_test, y_train, y_test = load_digits_split(args.seed, images=False)
    batch = args.batch_size - args.batch_size % len(devices)
    rng = np.random.default_rng(args.seed)
    print(f"{len(devices)} device(s): {[str(d) for d in devices]}; global batch {batch} "
          f"({batch // len(devices)} per device)")
    for step in range(args.steps):
        idx = rng.choice(len(x_train), batch, replace=False)
        loss = train_step(tensor.from_numpy(x_train[idx], backend, requires_grad=False),
                          tensor.from_numpy(y_train[idx], backend))
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    # The trained parameters are replicated over the mesh; evaluate them on the host.
    w1, b1, w2, b2 = (np.asarray(jax.device_get(p.data)) for p in model.parameters())
    h = np.maximum(x_test @ w1.T + b1, 0) @ w2.T + b2
    accuracy = float(np.mean(np.argmax(h, axis=1) == y_test))
    print(f"held-out accuracy {accuracy:.4f}; parameters sharded as {model.parameters()[0].data.sharding}")
    return {"devices": len(devices), "loss": loss.item(), "test_accuracy": accuracy}


if __name__ == "__main__":
    main()
