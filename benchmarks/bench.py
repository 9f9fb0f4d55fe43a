"""Benchmarks: jtape eager, jtape compiled, jax.jit(value_and_grad) and torch eager on the five
reference workloads of PERFORMANCE.md, plus per-op recording overhead and backward scaling.

Only ratios measured in one process mean anything on a shared machine: variants run
interleaved (one sample of each in turn, in a shuffled order each round, each after an untimed
step of its own), warm-up excluded, and the ratios are printed last.

    python benchmarks/bench.py                          # everything, CPU
    python benchmarks/bench.py --workloads MLP chain --repeats 20 --json out.json --markdown out.md
    python benchmarks/bench.py --device gpu
    python benchmarks/bench.py --workloads CNN --variants "jtape eager" "torch eager"

Variants: "jtape eager" (deferred, the default), "jtape op-by-op" (defer=False), "jtape compiled"
(jtape.jit), "jtape eager raw" / "jtape op-by-op raw" (MLPs: tensor ops and a hand-written SGD
update, no nn/optim), "jax.jit(value_and_grad)" (the baseline of every ratio) and "torch eager".

torch is optional (`pip install -e '.[bench]'` installs torch==2.13.0); without it its column is
left out. Times are per training step; "first call" includes tracing and compiling; "peak MB" is
XLA's memory analysis of the compiled program for compiled variants and for deferred jtape eager
(its largest cached program: the activations live inside it), and for a jtape eager that does not
defer the high-water mark of live jax arrays sampled during a step (approximate); torch is
measured on GPU only (torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import threading
import time
from typing import Any
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import WORKLOADS, build

from jtape.tensor.dtype import DataType

BASE = "jax.jit(value_and_grad)"


def _percentiles(xs: list[float]) -> dict:
    a = np.asarray(xs)
    return {"median": float(np.median(a)), "p25": float(np.percentile(a, 25)), "p75": float(np.percentile(a, 75))}


def _live_bytes() -> int:
    return sum(a.nbytes for a in jax.live_arrays())


def _eager_peak(fn: Callable[[], None]) -> float:
    """High-water mark of live jax array bytes above the level before the step, sampled every ~0.5 ms."""
    gc.collect()
    base, peak, stop = _live_bytes(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], _live_bytes())
            except RuntimeError:
                pass
            time.sleep(0.0005)

    t = threading.Thread(target=sample)
    t.start()
    for _ in range(3):
        fn()
    stop.set()
    t.join()
    return max(0, peak[0] - base) / 2**20


def _compiled_peak(lower: Callable) -> float | None:
    try:
        m = lower().compile().memory_analysis()
        total = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
        return total / 2**20
    except Exception:  # noqa: BLE001 — memory_analysis is not available on every platform
        return None


def _programs_peak(deferred: Any) -> float | None:
    """Deferred eager: the largest of its cached programs by XLA's memory analysis (the step's
    activations live inside the program, where sampling live jax arrays cannot see them). The
    optimizer's update, which joins the step's program once it repeats, is not included: the
    program of the same step without it is measured)."""
    peaks = []
    for key, entry in list(deferred.programs.items()):
        if key.spec[0] == "update":
            continue
        compiled = entry[0]
        args = [jax.ShapeDtypeStruct(tuple(shape), DataType(dtype).jax) for shape, dtype, _ in key.spec[1]]
        peaks.append(_compiled_peak(lambda compiled=compiled, args=args: compiled.lower(args)))
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def run_workload(name: str, device: str, repeats: int, torch: bool, only: list[str] | None = None) -> dict:
    variants = build(name, device)
    lowers = {k[len("_lower "):]: v for k, v in variants.items() if k.startswith("_lower ")}
    deferred = {k[len("_deferred "):]: v for k, v in variants.items() if k.startswith("_deferred ")}
    variants = {k: v for k, v in variants.items() if not k.startswith("_") and (torch or not k.startswith("torch"))
                and (only is None or k in only or k == BASE)}
    result: dict = {"workload": name, "variants": {}}
    for vname, fn in variants.items():
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start
        for _ in range(3):
            fn()
        start = time.perf_counter()
        fn()
        one = time.perf_counter() - start
        entry = {"first_call_s": first, "calls_per_sample": max(1, int(0.01 / max(one, 1e-6)))}
        if vname in lowers:
            entry["peak_mb"] = _compiled_peak(lowers[vname])
        elif vname in deferred:
            entry["peak_mb"] = _programs_peak(deferred[vname])
        elif vname == "jtape eager":
            entry["peak_mb"] = _eager_peak(fn)
        elif vname == "torch eager" and device == "gpu":
            import torch as T
            T.cuda.reset_peak_memory_stats()
            fn()
            entry["peak_mb"] = T.cuda.max_memory_allocated() / 2**20
        else:
            entry["peak_mb"] = None
        entry["samples"] = []
        result["variants"][vname] = entry
    # Interleaved: one sample of each in turn, in a new random order each round. What ran just before
    # a variant changes its time — torch's OpenMP threads keep spinning after its step and slow
    # whatever runs next on a 2-core machine, by up to 30 % — so each sample starts with one
    # untimed step of its own (its steady state, as in a process of its own), and no variant
    # always follows the same one.
    order = list(variants.items())
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for vname, fn in order:
            entry = result["variants"][vname]
            k = entry["calls_per_sample"]
            fn()
            start = time.perf_counter()
            for _ in range(k):
                fn()
            entry["samples"].append((time.perf_counter() - start) / k)
    for entry in result["variants"].values():
        entry.update(_percentiles(entry.pop("samples")))
    base = result["variants"].get(BASE, {}).get("median")
    tor = result["variants"].get("torch eager", {}).get("median")
    for entry in result["variants"].values():
        entry["vs_jax_jit"] = entry["median"] / base if base else None
        entry["vs_torch"] = entry["median"] / tor if tor else None
    return result


def recording_overhead(device: str, repeats: int) -> dict:
    """One recorded op on the op-by-op path (AutodiffBackend(JaxBackend, defer=False)) vs the same op on
    JaxBackend vs a raw jitted call. (Deferred, recording only records: the op runs later, in a program.)"""
    from jtape import autodiff
    from jtape.backends import JaxBackend
    inner = JaxBackend(device)
    backend = autodiff.new(inner, defer=False)
    a = inner.from_numpy(np.ones((64,), np.float32))
    b = inner.from_numpy(np.ones((64,), np.float32))
    raw = jax.jit(jnp.add)
    n = 2000
    calls = {"raw jitted call": lambda: raw(a.data, b.data), "JaxBackend op": lambda: inner.add(a, b),
             "recorded op": lambda: backend.add(a, b)}
    times: dict = {k: [] for k in calls}
    for _ in range(repeats):
        for k, f in calls.items():
            backend.tape().clear()
            f().block_until_ready() if k == "raw jitted call" else None
            start = time.perf_counter()
            for _ in range(n):
                out = f()
            jax.block_until_ready(out.data if hasattr(out, "data") else out)
            times[k].append((time.perf_counter() - start) / n)
    backend.tape().clear()
    res = {k: _percentiles(v) for k, v in times.items()}
    res["ratio recorded/raw"] = res["recorded op"]["median"] / res["raw jitted call"]["median"]
    return res


def backward_scaling(device: str) -> dict:
    """Backward time of an n-op chain for n = 5·10⁴ and 10⁵: linear means a ratio near 2."""
    from jtape import autodiff, tensor
    from jtape.backends import JaxBackend
    backend = autodiff.new(JaxBackend(device))
    out = {}
    for n in (50_000, 100_000):
        best = []
        for _ in range(3):
            x = tensor.from_slice([1.0], (1,), backend)
            y = x
            for _ in range(n):
                y = y.add_scalar(1.0)
            start = time.perf_counter()
            grads = autodiff.backward(y, backend)
            jax.block_until_ready(grads[x.raw()].data)
            best.append(time.perf_counter() - start)
            backend.tape().clear()
            del grads, x, y  # free this chain before building the next
        out[n] = min(best)
    out["ratio"] = out[100_000] / out[50_000]
    return out


def fmt(v, scale=1e3, digits=3):
    return "—" if v is None else f"{v * scale:.{digits}g}"


def to_markdown(report: dict) -> str:
    lines = [(f"Device: {report['device_name']} · jax {report['jax']} · torch {report.get('torch') or 'not installed'} "
              f"(threads: {report.get('torch_threads') or 'default'}) · {report['date']} · load average at start "
              f"{', '.join(f'{x:.1f}' for x in report.get('load_average', ()))} · {report.get('repeats')} interleaved "
              "samples per variant"), ""]
    lines += ["| workload | variant | median ms | p25–p75 ms | first call s | peak MB | × jax.jit | × torch |",
              "|---|---|---|---|---|---|---|---|"]
    for w in report["workloads"]:
        for vname, e in w["variants"].items():
            lines.append(f"| {w['workload']} | {vname} | {fmt(e['median'])} | {fmt(e['p25'])}–{fmt(e['p75'])} | "
                         f"{e['first_call_s']:.2f} | {fmt(e['peak_mb'], 1, 4)} | {fmt(e['vs_jax_jit'], 1)} | "
                         f"{fmt(e['vs_torch'], 1)} |")
    if "recording" in report:
        r = report["recording"]
        lines += ["", (f"Recording one op: {fmt(r['recorded op']['median'], 1e6)} µs vs a raw jitted call "
                      f"{fmt(r['raw jitted call']['median'], 1e6)} µs (JaxBackend op "
                      f"{fmt(r['JaxBackend op']['median'], 1e6)} µs): ratio {r['ratio recorded/raw']:.2f}.")]
    if "scaling" in report:
        s = report["scaling"]
        lines += ["", (f"Backward of a 10⁵-op chain: {s['100000']:.2f} s; 5·10⁴: {s['50000']:.2f} s; "
                      f"ratio {s['ratio']:.2f} (linear = 2).")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--device", default="cpu", help="cpu or gpu")
    parser.add_argument("--repeats", type=int, default=20, help="interleaved samples per variant")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--variants", nargs="+", help="run only these variants (and the jax.jit baseline)")
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads (on a CPU shared with other work, "
                        "torch's OpenMP threads can wait on each other for ~100x the step: 1 avoids it)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the 10⁵-op backward scaling run")
    parser.add_argument("--skip-extras", action="store_true", help="skip recording overhead and backward scaling")
    parser.add_argument("--json", help="write the full report as JSON here")
    parser.add_argument("--markdown", help="write the table as markdown here")
    args = parser.parse_args(argv)
    try:
        import torch
        torch_version = torch.__version__
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
    except ImportError:
        torch_version = None
    dev = jax.devices(args.device)[0]
    report: dict = {"device": args.device, "device_name": f"{dev.device_kind} ({platform.machine()}, "
                    f"{__import__('os').cpu_count()} cpus)", "jax": jax.__version__, "torch": torch_version,
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch_threads": args.torch_threads,
                    "load_average": __import__("os").getloadavg(), "repeats": args.repeats, "workloads": []}
    for name in args.workloads:
        print(f"== {name}", flush=True)
        res = run_workload(name, args.device, args.repeats, torch=not args.no_torch and torch_version is not None,
                           only=args.variants)
        report["workloads"].append(res)
        for vname, e in res["variants"].items():
            print(f"   {vname:26s} {fmt(e['median']):>8s} ms  (p25 {fmt(e['p25'])}, p75 {fmt(e['p75'])}; first call "
                  f"{e['first_call_s']:.2f} s; peak {fmt(e['peak_mb'], 1, 4)} MB)", flush=True)
    if not args.skip_extras:
        report["recording"] = recording_overhead(args.device, max(3, args.repeats // 4))
        if not args.no_scaling:
            report["scaling"] = {str(k): v for k, v in backward_scaling(args.device).items()}
    print("\n## Ratios (median step time; lower is better)")
    for w in report["workloads"]:
        for vname, e in w["variants"].items():
            if vname.startswith("jtape"):
                print(f"   {w['workload']:8s} {vname:22s} {fmt(e['vs_jax_jit'], 1):>6s}× jax.jit   "
                      f"{fmt(e['vs_torch'], 1):>6s}× torch eager")
    if "recording" in report:
        print(f"   recording one op (op by op): {report['recording']['ratio recorded/raw']:.2f}× a raw jitted call")
    if "scaling" in report:
        print(f"   backward 10⁵ vs 5·10⁴ ops: {report['scaling']['ratio']:.2f}×")
    md = to_markdown(report)
    if args.markdown:
        Path(args.markdown).write_text(md)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
