"""``jtape.distributed``: jtape over JAX's multi-controller runtime — one program, many processes.

    import jtape
    from jtape import distributed

    distributed.initialize()                       # first: reads JTAPE_* / torchrun / SLURM settings
    mesh = distributed.global_mesh()               # every process's devices on one "data" axis
    backend = jtape.autodiff.new(jtape.JaxBackend(distributed.local_device()))
    ...                                            # the same model, optimizer and step as on one device
    step = jtape.jit(train_step, state=[model, opt], mesh=mesh)            # data parallel
    step = jtape.jit(train_step, state=[model, opt], mesh=mesh, shard_params=True)   # ZeRO-3 / FSDP
    loss = step(x_local, y_local)                  # each process passes its own part of the batch

Run it with ``python -m jtape.distributed.launch -n 2 script.py`` on one machine, or one process
per host (or per GPU) under SLURM or torchrun. Every collective is XLA's, inserted by the SPMD
partitioner from the shardings in ``jtape.distributed.sharding``; nothing here sends data itself.
"""

from .checkpoint import load_checkpoint, load_optimizer_state_dict, optimizer_state_dict, save_checkpoint, to_host
from .env import ClusterSpec, DistributedError
from .measure import bytes_per_device, collectives
from .runtime import (
                         PEER_FAILURE_EXIT_CODE,
                         PeerFailure,
                         global_mesh,
                         initialize,
                         is_initialized,
                         local_device,
                         process_count,
                         process_index,
)
from .sharding import Placement, default_spec

__all__ = ["PEER_FAILURE_EXIT_CODE", "ClusterSpec", "DistributedError", "PeerFailure", "Placement",
           "bytes_per_device", "collectives", "default_spec", "global_mesh", "initialize", "is_initialized",
           "load_checkpoint", "load_optimizer_state_dict", "local_device", "optimizer_state_dict", "process_count",
           "process_index", "save_checkpoint", "to_host"]
