#!/usr/bin/env bash
# GPU check: the op oracle tests on the GPU (matmul/conv at "highest" precision), then the
# benchmarks on the GPU, then data-parallel throughput (one process, then one jtape.distributed
# process over every GPU), in under 8 minutes, printing a short table last.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]
#
# Needs a CUDA build of jax (and optionally torch) already installed; jtape runs from this
# checkout via PYTHONPATH, so nothing is fetched. Results land in OUTDIR (default
# /tmp/jtape_gpu_check, or $OUT where the device tool sets it): tests.log, bench_gpu.md/.json,
# data_parallel.md, distributed.md.
set -u
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/jtape_gpu_check}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export JTAPE_TEST_DEVICE=gpu JAX_DEFAULT_MATMUL_PRECISION=highest XLA_PYTHON_CLIENT_PREALLOCATE=false
start=$(date +%s)

{
  echo "## Device"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
  python3 - <<'PY'
import jax, numpy, platform
print(f"python {platform.python_version()} · jax {jax.__version__} · numpy {numpy.__version__} · devices {jax.devices()}")
try:
    import torch
    print(f"torch {torch.__version__} (cuda available: {torch.cuda.is_available()})")
except ImportError:
    print("torch: not installed")
PY
} | tee "$out/device.txt"

python3 -c "import jax, sys; sys.exit(0 if jax.devices()[0].platform == 'gpu' else 1)" \
  || { echo "gpu_check: jax sees no GPU; nothing to check"; exit 1; }

echo "## Oracle tests on the GPU (float32 and float64, JaxBackend only)"
# pytest-xdist, where installed, spreads the compiles over the host's cores (the GPU is shared).
par=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8" || echo "")
timeout 200 python3 -m pytest tests/ops/test_forward.py tests/ops/test_gradients.py tests/autodiff/test_tape.py tests/autodiff/test_born_faults.py tests/autodiff/test_random_programs.py tests/autodiff/test_compiled.py tests/autodiff/test_jit.py tests/examples/test_examples.py::test_digits_cnn_on_gpu $par \
  -q -p no:cacheprovider -m "not torch" -k "not numpy and not float16 and not bfloat16" 2>&1 | tee "$out/tests.log" | tail -n 15
tests_rc=${PIPESTATUS[0]}

echo "## Benchmarks on the GPU"
# the raw-op MLP variants are left out to keep the run inside its time limit
timeout 230 python3 benchmarks/bench.py --device gpu --repeats 10 --skip-extras \
  --variants "jtape eager" "jtape op-by-op" "jtape compiled" "torch eager" \
  --json "$out/bench_gpu.json" --markdown "$out/bench_gpu.md" 2>&1 | tee "$out/bench.log" | tail -n 25
bench_rc=${PIPESTATUS[0]}

echo "## Data-parallel step throughput over the GPUs jax sees (1, 2, 4, 8 as available), replicated and sharded"
timeout 60 python3 benchmarks/data_parallel.py --real --repeats 10 2>&1 | tee "$out/data_parallel.md" | tail -n 8

echo "## jtape.distributed on the GPUs: one process (launcher, initialize, global mesh over every local GPU)"
timeout 120 python3 benchmarks/data_parallel.py --real --processes 1 --repeats 10 2>&1 | tee "$out/distributed.md" | tail -n 6

echo
echo "## Summary ($(( $(date +%s) - start )) s)"
echo "oracle tests: $(grep -E '[0-9]+ (passed|failed)' "$out/tests.log" | tail -n 1) (exit $tests_rc)"
[ -f "$out/bench_gpu.md" ] && cat "$out/bench_gpu.md" || echo "benchmarks: exit $bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
