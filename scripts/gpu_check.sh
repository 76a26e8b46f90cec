#!/usr/bin/env bash
# One prepared check of hpc.cuda on a GPU host (what it needs there: docs/cuda.md, "Status, plainly"); under 8 minutes.
#   1. install the carried wheels (pycuda and its pure-Python deps) into /tmp/site, then hpc itself, editable;
#   2. run the gpu-marked tests of tests/cuda, then the whole tests/cuda suite on the GPU driver, then hpc.ml's
#      fits on the GPU twins (one process, then the same bits on 2 ranks);
#   3. run the CUDA benchmark (quick) and print its table last.
# Wheels (pycuda and its pure-Python deps, built for $PYTHON, default python3) are looked for in $HPC_WHEELS, .whl/,
# shared/wheels/ and ../shared/wheels/ (the first that has any).
# Usage: bash scripts/gpu_check.sh [OUTDIR]   (OUTDIR, default $OUT or /tmp, receives the logs and cuda.json)
# HPC_SKIP_INSTALL=1 skips step 1 (a rerun on a machine where it already ran).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
py="${PYTHON:-python3}"

export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
if [ "${HPC_SKIP_INSTALL:-0}" != 1 ]; then
    wheels=""
    for dir in "${HPC_WHEELS:-}" .whl shared/wheels ../shared/wheels; do
        if [ -n "$dir" ] && compgen -G "$dir/*.whl" >/dev/null; then wheels="$dir"; break; fi
    done
    if [ -z "$wheels" ]; then
        echo "gpu_check: no wheels found (set HPC_WHEELS or carry them in .whl/)" >&2
        exit 2
    fi
    echo "== installing $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into /tmp/site"
    "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$wheels"/*.whl || exit 2
    # a bare PYTHONPATH would not map kernels/ to hpc.kernels: install the project itself, editable
    "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$py" -c "from hpc import cuda; print('backend:', cuda.backend(), '|', cuda.devices() or cuda.unavailable_reason())"

status=0
echo "== pytest -m gpu tests/cuda"
timeout 150 "$py" -m pytest -m gpu tests/cuda -q -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "== pytest tests/cuda (the whole suite on the GPU driver)"
timeout 120 "$py" -m pytest tests/cuda -q -x -p no:cacheprovider 2>&1 | tee "$out/cuda_tests.log" | tail -8
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "== pytest tests/ml/test_device.py and tests/cuda/test_kernels_emulated.py (hpc.ml's fits on the GPU twins)"
timeout 150 "$py" -m pytest tests/ml/test_device.py tests/cuda/test_kernels_emulated.py -q -p no:cacheprovider 2>&1 \
    | tee "$out/ml_tests.log" | tail -8
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if command -v mpirun >/dev/null; then
    echo "== mpirun -n 2: GPU fits are the same bits on 2 ranks as on 1 (tests/ml/test_bits_mpi.py -k device)"
    timeout 150 mpirun --allow-run-as-root --oversubscribe -n 2 "$py" -m pytest -m mpi tests/ml/test_bits_mpi.py \
        -k device -q -p no:cacheprovider 2>&1 | tee "$out/ml_mpi.log" | tail -4
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
echo "== python -m hpc.cuda.bench --quick"
timeout 120 "$py" -m hpc.cuda.bench --quick --json "$out/cuda.json" >"$out/bench.txt" 2>"$out/bench.err" || {
    status=1
    tail -20 "$out/bench.err"
}
echo "== gpu_check status: $status (0: every check passed)"
cat "$out/bench.txt"
exit $status
