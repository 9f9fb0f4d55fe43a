"""The Python an eager step runs, apart from its program: the step's joined program is replaced by a
stub that returns its last results at once, so what is timed is recording the forward, describing
the structure at ``backward()`` and the optimizer's bookkeeping — the part of an eager step that
jax.jit does not have. Printed per phase, as a fraction of a whole jax.jit(value_and_grad) step
measured in the same process (and in µs, for the record only: ratios are what compare).

    python benchmarks/python_cost.py                    # MLP-born, MLP and chain (2000 / 500 / 2000 stubbed steps)
    python benchmarks/python_cost.py --workloads chain
    python benchmarks/python_cost.py --per-op --workloads MLP-born   # also: recording one op, warm

The numbers are "warm": the stubbed steps run back to back, so the interpreter's caches hold
jtape's code and objects. Inside a real step the program runs in between (and evicts them): the
same Python then takes 2-4× longer (docs/performance.md, "Fourth pass").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import WORKLOADS, _chain_tape, _jtape_model, inputs, jax_variants

from jtape import autodiff, optim, tensor
from jtape.backends import JaxBackend


def _stub_programs(deferred) -> None:
    """Every cached program answers with the results of its first call, at once."""
    for key, entry in list(deferred.programs.items()):
        if isinstance(entry, list):          # a joined program: [jitted, called]
            entry[0] = _stub(entry[0])
        else:                                # a step's program alone: (jitted, traced function)
            deferred.programs[key] = (_stub(entry[0]), entry[1])


def _stub(fn):
    last = {}

    def stub(*args):
        if "out" not in last:
            last["out"] = jax.block_until_ready(fn(*args))
        return last["out"]
    return stub


def _mlp(w, x, y, weights):
    backend = autodiff.new(JaxBackend("cpu"))
    xt = tensor.from_numpy(x, backend, requires_grad=False)
    yt = tensor.from_numpy(y, backend)
    model = _jtape_model(w, backend, weights)
    opt = optim.SGD(model.parameters(), lr=0.01)
    phases = {"forward": [], "backward": [], "optimizer": []}

    def step():
        t0 = time.perf_counter()
        loss = model(xt).cross_entropy(yt)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        for k, a, b in (("forward", t0, t1), ("backward", t1, t2), ("optimizer", t2, t3)):
            phases[k].append(b - a)
        return loss
    return backend, step, phases


def _chain(w, weights):
    backend = autodiff.new(JaxBackend("cpu"))
    leaves = [tensor.from_numpy(v, backend) for v in weights]
    phases = {"forward": [], "gradient": []}

    def step():
        t0 = time.perf_counter()
        loss = _chain_tape(*leaves)
        t1 = time.perf_counter()
        grads = backend.tape().gradient(loss, leaves)
        backend.tape().clear()
        t2 = time.perf_counter()
        phases["forward"].append(t1 - t0)
        phases["gradient"].append(t2 - t1)
        return grads[0]
    return backend, step, phases


def measure(name: str, samples: int) -> dict:
    w = WORKLOADS[name]
    x, y, weights = inputs(w)
    backend, step, phases = _chain(w, weights) if w.kind == "chain" else _mlp(w, x, y, weights)
    for _ in range(5):                       # first sight, compile, steady state
        jax.block_until_ready(step().data)
    _stub_programs(backend._deferred)
    for _ in range(20):
        step()
    reference = jax_variants(w, "cpu", weights, x, y)["jax.jit(value_and_grad)"]
    for _ in range(5):
        reference()
    jax_times: list[float] = []
    for v in phases.values():
        v.clear()
    for i in range(samples):                 # blocks of stubbed steps, each followed by a block of jax steps
        step()
        if i % 50 == 49:
            for _ in range(10):
                t = time.perf_counter()
                reference()
                jax_times.append(time.perf_counter() - t)
    jax_step = float(np.median(jax_times))
    out = {"jax.jit step ms": jax_step * 1e3}
    total = np.sum([np.array(v) for v in phases.values()], axis=0)
    for k, v in list(phases.items()) + [("total", total)]:
        med = float(np.median(v))
        out[k] = {"µs": med * 1e6, "× jax.jit step": med / jax_step}
    return out


def per_op(samples: int) -> dict:
    """Recording one op through ``Tensor`` in deferred mode (``a + b``, a ``Linear``, ``relu``: four ops,
    recorded 100 times, then dropped unrun) against a raw jitted call of one tiny op, interleaved."""
    from jtape import nn

    backend = autodiff.new(JaxBackend("cpu"))
    a = tensor.from_numpy(np.ones((32, 64), np.float32), backend)
    b = tensor.from_numpy(np.ones((32, 64), np.float32), backend)
    lin = nn.Linear(64, 64, backend, seed=0)
    raw_add, ad = jax.jit(jax.numpy.add), jax.numpy.ones((64,), np.float32)

    def record():
        for _ in range(100):
            h = lin(a + b).relu()
        del h
        backend.tape().clear()
        backend._deferred.nodes = []         # dropped unrun: only the recording is timed

    def raw():
        for _ in range(400):
            raw_add(ad, ad)
    times: dict = {"record": [], "raw": []}
    for _ in range(5):
        record()
        raw()
    for _ in range(samples):
        for k, fn in (("record", record), ("raw", raw)):
            t = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t) / 400)
    rec, rawt = float(np.median(times["record"])), float(np.median(times["raw"]))
    return {"µs per recorded op": rec * 1e6, "µs per raw jitted call": rawt * 1e6, "ratio": rec / rawt}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=["MLP-born", "MLP", "chain"])
    parser.add_argument("--samples", type=int, default=None, help="stubbed steps per workload (default 2000; MLP 500)")
    parser.add_argument("--per-op", action="store_true", help="also time recording one op (deferred) against a raw call")
    args = parser.parse_args(argv)
    if args.per_op:
        r = per_op(200)
        print(f"recording one op through Tensor (deferred): {r['µs per recorded op']:.2f} µs, "
              f"{r['ratio']:.2f}× a raw jitted call of one tiny op ({r['µs per raw jitted call']:.2f} µs)")
    for name in args.workloads:
        res = measure(name, args.samples or (500 if name == "MLP" else 2000))
        parts = ", ".join(f"{k} {v['× jax.jit step']:.3f} ({v['µs']:.0f} µs)" for k, v in res.items() if isinstance(v, dict))
        print(f"{name}: Python per eager step, × a jax.jit step ({res['jax.jit step ms']:.3f} ms): {parts}")


if __name__ == "__main__":
    main()
