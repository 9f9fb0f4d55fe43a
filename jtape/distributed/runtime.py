"""Starting JAX's multi-controller runtime for jtape, and what a dead peer looks like.

Every process of a run calls ``initialize()`` first — before anything touches a jax device —
and then runs the same program. JAX's coordination service (hosted by process 0) lets the
processes find each other; each process sees every process's devices in ``jax.devices()``,
owns its ``jax.local_devices()``, and the compiled step's collectives run over NCCL on GPUs
and Gloo (TCP) on CPUs. jtape adds no communication of its own.

A peer that dies is noticed in one of two ways, both within bounded time:

* a collective with it fails at once (its sockets close) or after ``collective_timeout_s``
  (on CPU; a peer that is alive but stuck) — the compiled step then raises ``PeerFailure``;
* its heartbeats stop: after ``heartbeat_timeout_s`` the coordination service marks it dead
  and JAX terminates every other process ("Terminating process because the JAX distributed
  service detected fatal errors"). This is what bounds a run on GPUs, where NCCL does not time out.

After a ``PeerFailure`` the runtime cannot be shut down cleanly (its shutdown barrier waits for
the dead peer), so at exit jtape ends the process with ``os._exit(PEER_FAILURE_EXIT_CODE)`` once
the traceback is printed, rather than letting it hang and abort. A failure that surfaces outside a
step call (``loss.item()`` waiting for a step whose collective failed) is named a ``PeerFailure``
too, when it ends the program. Restart the job from a checkpoint (``jtape.distributed.save_checkpoint``).
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from ..tensor.errors import JtapeError
from .env import PEER_FAILURE_EXIT_CODE, ClusterSpec, DistributedError, resolve


_state: dict[str, Any] = {"spec": None, "peer_failed": False}


class PeerFailure(DistributedError):
    """A collective failed because another process of the run died or stopped answering."""


_STATUS = re.compile(r"[A-Z_]+: ")  # how the XLA runtime's errors start: "UNKNOWN: Gloo all-reduce failed: ..."
_PEER_MARKERS = re.compile(r"gloo|nccl|collective|connection (reset|refused|closed)|heartbeat|coordination service|"
                           r"deadline_exceeded|socket closed|unavailable", re.IGNORECASE)


def peer_failure(error: BaseException) -> PeerFailure | None:
    """The ``PeerFailure`` that ``error`` (raised by a compiled multi-process step) stands for,
    or None when it is something else."""
    if isinstance(error, PeerFailure):
        return error
    text = str(error).strip()
    if isinstance(error, (JtapeError, TypeError)) or not _STATUS.match(text) or not _PEER_MARKERS.search(text):
        return None  # jtape's own errors, mistakes in the step found while tracing, anything not from the runtime
    _state["peer_failed"] = True
    first = text.splitlines()[0][:300]
    return PeerFailure(f"jtape.distributed: process {jax.process_index()} of {jax.process_count()}: a collective of "
                       f"the compiled step failed — another process of the run probably died or stopped answering. "
                       f"The run cannot go on; restart it from its last checkpoint. (XLA said: {first})")


def _exit_after_peer_failure() -> None:
    if _state["peer_failed"]:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(PEER_FAILURE_EXIT_CODE)


def _report_peer_failure(kind: type, value: BaseException, tb: Any, previous: Any = sys.excepthook) -> None:
    """``sys.excepthook`` while distributed: an uncaught error that a dead peer caused outside a
    step call (e.g. when ``loss.item()`` waits for the failed step) is named as a ``PeerFailure``."""
    previous(kind, value, tb)
    failure = peer_failure(value)
    if failure is not None and failure is not value:
        print(f"jtape.distributed.PeerFailure: {failure}", file=sys.stderr)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _add_xla_flag(name: str, value: Any) -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if f"--{name}=" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --{name}={value}".strip()


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None, *,
               heartbeat_timeout_s: int | None = None, collective_timeout_s: int | None = None,
               initialization_timeout_s: int = 120, shutdown_timeout_s: int = 30,
               env: Mapping[str, str] | None = None) -> ClusterSpec:
    """Join a multi-process run (``jax.distributed.initialize``); call it first in every process.

    Arguments not given are read from the environment (``jtape.distributed.env``): ``JTAPE_*``
    (set by ``python -m jtape.distributed.launch``), torchrun's ``MASTER_ADDR`` / ``MASTER_PORT``
    / ``WORLD_SIZE`` / ``RANK``, or SLURM's ``SLURM_*``.

    Args:
        coordinator_address: ``host:port`` of process 0, where the coordination service listens.
            On a loopback address it binds only to that address.
        num_processes: how many processes the run has.
        process_id: this process's id, in ``[0, num_processes)``.
        local_device_ids: the local devices this process owns (one process per GPU); default all.
        heartbeat_timeout_s: a process silent this long is declared dead and the run is ended
            (default ``JTAPE_HEARTBEAT_TIMEOUT_S`` or 60).
        collective_timeout_s: how long a CPU (Gloo) collective waits for a stalled peer before it
            fails (default ``JTAPE_COLLECTIVE_TIMEOUT_S`` or 600); set on the XLA flags.
        initialization_timeout_s: how long to wait for every process to join.
        shutdown_timeout_s: how long a finished process waits for the others at exit.

    Returns:
        The ``ClusterSpec`` this process joined with.

    Raises:
        DistributedError: settings missing or malformed, called twice or after jax started, or the
            coordinator not reachable in time.
    """
    env = os.environ if env is None else env
    if _state["spec"] is not None or jax.distributed.is_initialized():
        raise DistributedError("jtape.distributed.initialize: already initialized in this process; expected one call")
    spec = resolve(env, coordinator_address, num_processes, process_id, local_device_ids)
    from jax._src import xla_bridge  # the only way to ask whether a backend already started

    if xla_bridge.backends_are_initialized():
        raise DistributedError("jtape.distributed.initialize: jax already started its devices in this process "
                               "(something ran, or called jax.devices()); expected initialize() first, before "
                               "creating backends, tensors or models")
    heartbeat = int(heartbeat_timeout_s or env.get("JTAPE_HEARTBEAT_TIMEOUT_S") or 60)
    collective = int(collective_timeout_s or env.get("JTAPE_COLLECTIVE_TIMEOUT_S") or 600)
    _add_xla_flag("xla_cpu_collective_timeout_seconds", collective)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    bind = spec.coordinator_address if _is_loopback(spec.coordinator_host) else None
    try:
        jax.distributed.initialize(coordinator_address=spec.coordinator_address, num_processes=spec.num_processes,
                                   process_id=spec.process_id,
                                   local_device_ids=None if spec.local_device_ids is None
                                   else list(spec.local_device_ids),
                                   cluster_detection_method="deactivate",
                                   initialization_timeout=initialization_timeout_s,
                                   heartbeat_timeout_seconds=heartbeat, shutdown_timeout_seconds=shutdown_timeout_s,
                                   coordinator_bind_address=bind)
    except Exception as e:
        raise DistributedError(f"jtape.distributed.initialize: process {spec.process_id} of {spec.num_processes} could "
                               f"not join the run at {spec.coordinator_address} (settings from {spec.source}) within "
                               f"{initialization_timeout_s} s: {str(e).strip().splitlines()[0][:300]}") from e
    _state["spec"] = spec
    atexit.register(_exit_after_peer_failure)  # runs before jax's own exit hook (atexit is LIFO)
    sys.excepthook = functools.partial(_report_peer_failure, previous=sys.excepthook)
    return spec


def is_initialized() -> bool:
    """Whether this process joined a multi-process run."""
    return jax.distributed.is_initialized()


def process_index() -> int:
    """This process's id (0 when not distributed)."""
    return jax.process_index()


def process_count() -> int:
    """How many processes the run has (1 when not distributed)."""
    return jax.process_count()


def local_device() -> Any:
    """This process's first device: where to build a ``JaxBackend`` before placing on a mesh."""
    return jax.local_devices()[0]


def global_mesh(axes: Mapping[str, int] | Sequence[str] = ("data",)) -> Any:
    """A ``jax.sharding.Mesh`` over every process's devices, process by process.

    ``axes``: axis names for a 1-D mesh (``("data",)``), or ``{"data": 2, "model": 4}`` — sizes whose
    product is the device count; use ``-1`` for one size to be inferred. Devices are ordered by
    (process, id), so the *last* axes stay within a process (cheap links) where the sizes allow."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    if isinstance(axes, Mapping):
        names, shape = tuple(axes), tuple(int(s) for s in axes.values())
    else:
        names = tuple(axes)
        shape = (len(devices),) + (1,) * (len(names) - 1)
    if not names:
        raise ValueError("jtape.distributed.global_mesh: got no axes; expected e.g. ('data',) or {'data': -1}")
    try:
        grid = np.array(devices, dtype=object).reshape(shape)
    except ValueError:
        raise ValueError(f"jtape.distributed.global_mesh: axes {dict(zip(names, shape))} do not fit the "
                         f"{len(devices)} devices of {jax.process_count()} process(es); expected sizes whose product "
                         f"is {len(devices)}") from None
    return jax.sharding.Mesh(grid, names)
