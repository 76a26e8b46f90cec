#!/usr/bin/env bash
# One prepared check of hpc.cuda on a GPU host (what it needs there: docs/cuda.md, "Status, plainly"); under 8
# minutes, and up to 4 more for the threading layers.
#   1. install the carried wheels (pycuda and its pure-Python deps) into /tmp/site, then hpc itself, editable;
#   2. run the gpu-marked tests of tests/cuda, then the whole tests/cuda suite on the GPU driver, then hpc.ml's
#      fits on the GPU twins (one process, then the same bits on 2 ranks);
#   3. run the CUDA benchmark (quick), then numba's threading layers side by side where a tbb wheel is carried
#      (scripts/bench_threading_layers.py), and print their tables last.
# Wheels (pycuda and its pure-Python deps, built for $PYTHON, default python3) are looked for in $HPC_WHEELS, .whl/,
# shared/wheels/ and ../shared/wheels/ (the first that has any). For step 3's threading layers, carry a tbb wheel
# too (the host has no registry): `python3 -m pip download --no-deps -d .whl 'tbb>=2021.6'` here, before the run.
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
# numba's threading layers on a host with many cores (docs/kernels.md has the trade measured on 2 only): a carried
# tbb wheel's library, unpacked (pip --target leaves a wheel's lib/ files out), on LD_LIBRARY_PATH. A benchmark: it
# reports and does not change the status. HPC_SKIP_LAYERS=1 skips it.
tbbwhl=""
for dir in "${HPC_WHEELS:-}" .whl shared/wheels ../shared/wheels; do
    if [ -n "$dir" ] && compgen -G "$dir/tbb-*.whl" >/dev/null; then tbbwhl=$(ls "$dir"/tbb-*.whl | head -1); break; fi
done
rm -f "$out/layers.txt"
if [ "${HPC_SKIP_LAYERS:-0}" != 1 ] && [ -n "$tbbwhl" ]; then
    echo "== scripts/bench_threading_layers.py --rounds 2 (numba's OpenMP against TBB; $(basename "$tbbwhl"))"
    rm -rf /tmp/tbblib && mkdir -p /tmp/tbblib
    "$py" - "$tbbwhl" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if "/lib/libtbb.so" in name:
            with open("/tmp/tbblib/" + name.rsplit("/", 1)[1], "wb") as f:
                f.write(wheel.read(name))
PY
    LD_LIBRARY_PATH=/tmp/tbblib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} timeout 240 "$py" scripts/bench_threading_layers.py \
        --rounds 2 --json "$out/threading_layers.json" >"$out/layers.txt" 2>"$out/layers.err" || tail -20 "$out/layers.err"
else
    echo "== threading layers: skipped (HPC_SKIP_LAYERS=1, or no tbb-*.whl carried)"
fi
echo "== gpu_check status: $status (0: every check passed)"
cat "$out/bench.txt"
[ -s "$out/layers.txt" ] && cat "$out/layers.txt"
exit $status
