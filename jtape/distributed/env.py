"""Where a process finds its place in a multi-process run: arguments, or the environment.

``resolve`` returns a ``ClusterSpec`` (coordinator address, process count, this process's id,
optionally which local devices it owns) from, in order of precedence:

1. explicit arguments;
2. ``JTAPE_COORDINATOR_ADDRESS`` (``host:port``), ``JTAPE_NUM_PROCESSES``, ``JTAPE_PROCESS_ID``,
   ``JTAPE_LOCAL_DEVICE_IDS`` (comma-separated) — what ``python -m jtape.distributed.launch`` sets;
3. torchrun-style ``MASTER_ADDR`` / ``MASTER_PORT`` / ``WORLD_SIZE`` / ``RANK`` (``LOCAL_RANK``,
   ``LOCAL_WORLD_SIZE``). Under torchrun itself (``TORCHELASTIC_RUN_ID`` set) torchrun's own
   store already listens on ``MASTER_PORT``, so the coordinator takes ``MASTER_PORT + 1``;
4. SLURM's ``SLURM_NTASKS`` / ``SLURM_PROCID`` / ``SLURM_STEP_NODELIST`` (or ``SLURM_JOB_NODELIST``):
   the coordinator is the first host of the node list, on a port derived from ``SLURM_JOB_ID``.

``JTAPE_COORDINATOR_PORT`` overrides the port of 3 and 4. Each field is taken from the first
source that names it, so e.g. ``JTAPE_COORDINATOR_ADDRESS`` can be combined with SLURM's ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..tensor.errors import JtapeError

PEER_FAILURE_EXIT_CODE = 75  # EX_TEMPFAIL: the job can be restarted from its last checkpoint


class DistributedError(JtapeError, RuntimeError):
    """A multi-process run that cannot start or go on: bad settings, a dead or stalled peer."""


@dataclass(frozen=True)
class ClusterSpec:
    """This process's place in a multi-process run, and where each field came from."""

    coordinator_address: str
    num_processes: int
    process_id: int
    local_device_ids: tuple[int, ...] | None = None
    source: str = "arguments"

    @property
    def coordinator_host(self) -> str:
        return self.coordinator_address.rsplit(":", 1)[0]

    @property
    def coordinator_port(self) -> int:
        return int(self.coordinator_address.rsplit(":", 1)[1])


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"jtape.distributed: environment variable {name}={value!r}; "
                               f"expected an integer") from None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``node[003-006,9],gpu1`` -> ``node003``."""
    head = re.match(r"([^,\[]*)(\[([^\]]*)\])?", nodelist.strip())
    if head is None or not head.group(1) and not head.group(3):
        raise DistributedError(f"jtape.distributed: cannot read the SLURM node list {nodelist!r}; expected e.g. "
                               f"'node[01-04]' or 'host1,host2'")
    prefix, ranges = head.group(1), head.group(3)
    if ranges is None:
        return prefix
    return prefix + re.split(r"[,-]", ranges, maxsplit=1)[0]


def _port(env: Mapping[str, str], default: int) -> int:
    override = _int(env, "JTAPE_COORDINATOR_PORT")
    return default if override is None else override


def _torchrun(env: Mapping[str, str]) -> dict:
    found: dict = {}
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        master_port = _int(env, "MASTER_PORT")
        assert master_port is not None
        port = _port(env, master_port + 1 if env.get("TORCHELASTIC_RUN_ID") else master_port)
        found["coordinator_address"] = f"{env['MASTER_ADDR']}:{port}"
    if (n := _int(env, "WORLD_SIZE")) is not None:
        found["num_processes"] = n
    if (r := _int(env, "RANK")) is not None:
        found["process_id"] = r
    local_rank, local_size = _int(env, "LOCAL_RANK"), _int(env, "LOCAL_WORLD_SIZE")
    if local_rank is not None and local_size is not None and local_size > 1:
        found["local_device_ids"] = (local_rank,)  # one process per device on this host
    return found


def _slurm(env: Mapping[str, str]) -> dict:
    found: dict = {}
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
    job = _int(env, "SLURM_JOB_ID")
    if nodelist and job is not None:
        found["coordinator_address"] = f"{first_host(nodelist)}:{_port(env, 49152 + job % 16384)}"
    if (n := _int(env, "SLURM_NTASKS")) is not None:
        found["num_processes"] = n
    if (r := _int(env, "SLURM_PROCID")) is not None:
        found["process_id"] = r
    return found


def _jtape(env: Mapping[str, str]) -> dict:
    found: dict = {}
    if env.get("JTAPE_COORDINATOR_ADDRESS"):
        found["coordinator_address"] = env["JTAPE_COORDINATOR_ADDRESS"]
    if (n := _int(env, "JTAPE_NUM_PROCESSES")) is not None:
        found["num_processes"] = n
    if (r := _int(env, "JTAPE_PROCESS_ID")) is not None:
        found["process_id"] = r
    if env.get("JTAPE_LOCAL_DEVICE_IDS"):
        ids = env["JTAPE_LOCAL_DEVICE_IDS"]
        try:
            found["local_device_ids"] = tuple(int(i) for i in ids.split(","))
        except ValueError:
            raise DistributedError(f"jtape.distributed: JTAPE_LOCAL_DEVICE_IDS={ids!r}; expected comma-separated "
                                   f"integers such as '0,1'") from None
    return found


FIELDS = ("coordinator_address", "num_processes", "process_id")


def resolve(env: Mapping[str, str], coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, local_device_ids: Sequence[int] | None = None) -> ClusterSpec:
    """The ``ClusterSpec`` from the arguments, else ``env`` (see the module docstring).

    Raises ``DistributedError`` naming what is missing or malformed."""
    given = {k: v for k, v in (("coordinator_address", coordinator_address), ("num_processes", num_processes),
                               ("process_id", process_id)) if v is not None}
    if local_device_ids is not None:
        given["local_device_ids"] = tuple(int(i) for i in local_device_ids)
    merged, sources = dict(given), {k: "arguments" for k in given}
    for name, reader in (("JTAPE_*", _jtape), ("torchrun", _torchrun), ("SLURM", _slurm)):
        for key, value in reader(env).items():
            if key not in merged:
                merged[key], sources[key] = value, name
    missing = [k for k in FIELDS if k not in merged]
    if missing:
        raise DistributedError(f"jtape.distributed.initialize: no {', '.join(missing)} given; expected arguments, "
                               f"or JTAPE_COORDINATOR_ADDRESS / JTAPE_NUM_PROCESSES / JTAPE_PROCESS_ID, or torchrun's "
                               f"MASTER_ADDR / MASTER_PORT / WORLD_SIZE / RANK, or SLURM's SLURM_NTASKS / SLURM_PROCID "
                               f"/ SLURM_STEP_NODELIST / SLURM_JOB_ID in the environment")
    address, n, pid = merged["coordinator_address"], merged["num_processes"], merged["process_id"]
    if not isinstance(address, str) or not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", address):
        raise DistributedError(f"jtape.distributed: coordinator address {address!r} (from "
                               f"{sources['coordinator_address']}); expected 'host:port'")
    if not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        raise DistributedError(f"jtape.distributed: coordinator port in {address!r} is out of range; expected 1..65535")
    if not isinstance(n, int) or n < 1:
        raise DistributedError(f"jtape.distributed: num_processes={n!r} (from {sources['num_processes']}); "
                               f"expected a positive integer")
    if not isinstance(pid, int) or not 0 <= pid < n:
        raise DistributedError(f"jtape.distributed: process_id={pid!r} (from {sources['process_id']}); expected an "
                               f"integer in [0, {n})")
    origin = ", ".join(sorted({sources[k] for k in FIELDS}))
    return ClusterSpec(address, n, pid, merged.get("local_device_ids"), origin)
