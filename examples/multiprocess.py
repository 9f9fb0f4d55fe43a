"""Multi-process training with jtape.distributed: one script, every process runs it.

The digits MLP, trained with ``jtape.jit(step, state=[model, opt], mesh=mesh)`` over a mesh of
*every process's* devices. Each process loads only its part of each global batch; XLA's SPMD
partitioner averages the gradients across processes (Gloo on CPUs, NCCL on GPUs). With
``--shard-params`` the parameters and Adam's moments are split over the devices instead of
replicated (ZeRO-3 / FSDP), and each device holds about 1/N of them.

Run:  python -m jtape.distributed.launch -n 2 examples/multiprocess.py            # 2 local processes
      python -m jtape.distributed.launch -n 2 --cpu-devices 2 examples/multiprocess.py --shard-params
      srun --ntasks-per-node=1 python examples/multiprocess.py                     # SLURM: one per host
      torchrun --nnodes=4 --nproc-per-node=1 ... examples/multiprocess.py          # torchrun-style
      python examples/multiprocess.py                                              # alone: one process
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

LAUNCHED = ("JTAPE_NUM_PROCESSES", "WORLD_SIZE", "SLURM_NTASKS")  # set by a launcher or scheduler


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch, split over the processes")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--shard-params", action="store_true", help="shard parameters and Adam state (FSDP)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="write a checkpoint here at the end")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from jtape import distributed
    if any(os.environ.get(k) for k in LAUNCHED):
        distributed.initialize()                                  # first, before any jax device is used
    import numpy as np

    import jtape
    from jtape import autodiff, nn, optim, tensor
    from jtape.backends import JaxBackend

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from digits_cnn import load_digits_split

    pid, nproc = distributed.process_index(), distributed.process_count()
    mesh = distributed.global_mesh()                              # every process's devices, one "data" axis
    backend = autodiff.new(JaxBackend(distributed.local_device()))
    model = nn.Sequential(nn.Linear(64, 128, backend, seed=args.seed), nn.ReLU(),
                          nn.Linear(128, 10, backend, seed=args.seed + 1))  # same seed: same start everywhere
    opt = optim.Adam(model.parameters(), lr=args.lr)

    @jtape.jit(state=[model, opt], mesh=mesh, shard_params=args.shard_params)
    def train_step(x: Any, y: Any) -> Any:                      # the ordinary one-device step
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    def say(message: str) -> None:
        if pid == 0:
            print(message, flush=True)

    x_train, x_test, y_train, y_test = load_digits_split(args.seed, images=False)
    devices = len(mesh.devices.flat)
    batch = args.batch_size - args.batch_size % devices
    mine = slice(pid * batch // nproc, (pid + 1) * batch // nproc)  # this process's part of every batch
    rng = np.random.default_rng(args.seed)                       # the same draws in every process
    say(f"{nproc} process(es), {devices} device(s); global batch {batch}, {batch // nproc} per process; "
        f"parameters {'sharded' if args.shard_params else 'replicated'}")
    for step in range(args.steps):
        idx = rng.choice(len(x_train), batch, replace=False)[mine]
        loss = train_step(tensor.from_numpy(x_train[idx], backend, requires_grad=False),
                          tensor.from_numpy(y_train[idx], backend))
        if step % 50 == 0 or step == args.steps - 1:
            say(f"step {step:4d}  loss {loss.item():.4f}")
    # Every process gathers the parameters (a collective when they are sharded), then evaluates.
    w1, b1, w2, b2 = (distributed.to_host(p.data) for p in model.parameters())
    h = np.maximum(x_test @ w1.T + b1, 0) @ w2.T + b2
    accuracy = float(np.mean(np.argmax(h, axis=1) == y_test))
    held = max(distributed.bytes_per_device(model, opt).values())
    say(f"held-out accuracy {accuracy:.4f}; parameters + Adam state: {held:,} bytes on each device")
    if args.checkpoint is not None:
        distributed.save_checkpoint(args.checkpoint, model, opt, step=args.steps)  # every process calls it
        say(f"checkpoint written to {args.checkpoint}")
    print(f"process {pid}: done", flush=True)
    return {"processes": nproc, "devices": devices, "loss": loss.item(), "test_accuracy": accuracy,
            "bytes_per_device": held}


if __name__ == "__main__":
    main()
