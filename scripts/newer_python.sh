#!/usr/bin/env bash
# Run part of the suite on a newer CPython than this machine's: Debian's stable release (trixie, Python 3.13) in a
# chroot that debootstrap makes, with hpc installed there as `make install` does (its own venv, from PyPI).
# What a newer Python changes for hpc: the wheels pip picks (llvmlite's build, NumPy, SciPy), hence the machine code
# LLVM makes for the kernels (the subnormal audit in tests/kernels failed on 3.13 alone), venvs without setuptools,
# and CPython's own reference counting (hpc.mpi's buffer reuse).
#
#   scripts/newer_python.sh            the demo, tests/kernels, packaging and typing, two MPI test files on 2 ranks
#   scripts/newer_python.sh --check    say why it cannot run here (exit 1), or nothing (exit 0)
#
# The chroot stays in $HPC_CHROOT (default /var/tmp/hpc-trixie) between runs: debootstrap takes a minute or two (a
# stamp file says it finished). The working tree (tracked files and untracked ones git does not ignore) is copied in
# afresh each run. The run happens in a mount namespace of its own (unshare): /proc, /sys, /dev, /dev/pts and
# /dev/shm are bind-mounted there, never on this machine's mount table, and go when the run ends however it ends
# (SIGKILL too), so nothing can reach the machine's /dev through the chroot afterwards. Runs take turns (flock).
# This machine's CA bundle and resolv.conf are copied in, so pip reaches PyPI as it does here (through the same
# proxy, where there is one).
set -euo pipefail

SUITE=trixie
CHROOT=${HPC_CHROOT:-/var/tmp/hpc-$SUITE}
MIRROR=${HPC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MOUNTS=(proc sys dev dev/pts dev/shm)

why_not() {
    [ "$(id -u)" = 0 ] || { echo "needs root (chroot and bind mounts)"; return; }
    command -v git > /dev/null || { echo "needs git"; return; }
    command -v unshare > /dev/null || { echo "needs unshare (util-linux)"; return; }
    command -v debootstrap > /dev/null || command -v apt-get > /dev/null \
        || { echo "needs debootstrap, or apt-get to install it"; return; }
    # what the run does: a bind mount in a private mount namespace (a container without CAP_SYS_ADMIN refuses it)
    local probe
    probe=$(mktemp -d)
    unshare --mount --propagation private mount --bind "$probe" "$probe" 2> /dev/null \
        || echo "cannot bind-mount in a mount namespace of its own here (unshare --mount)"
    rmdir "$probe"
}

if [ "${1:-}" = --check ]; then
    reason=$(why_not)
    [ -z "$reason" ] || { echo "$reason"; exit 1; }
    exit 0
fi
if [ -z "${HPC_NEWER_PYTHON_NS:-}" ]; then
    reason=$(why_not)
    [ -z "$reason" ] || { echo "newer_python: $reason" >&2; exit 1; }
    exec env HPC_NEWER_PYTHON_NS=1 unshare --mount --propagation private "$0" "$@"
fi

mkdir -p "$(dirname "$CHROOT")"
exec 9> "$CHROOT.lock"
flock 9  # another run (CI, a developer) finishes first: it copies into and mounts on the same chroot

unmount() {  # the namespace's end would do it too; this keeps the chroot clean for rm
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        mountpoint -q "$CHROOT/${MOUNTS[i]}" && umount -l "$CHROOT/${MOUNTS[i]}" || true
    done
}
trap unmount EXIT

if [ ! -f "$CHROOT/.hpc-debootstrap-done" ]; then
    if ! command -v debootstrap > /dev/null; then
        apt-get update -q > /dev/null && apt-get install -y -q debootstrap > /dev/null
    fi
    echo "== debootstrap $SUITE into $CHROOT =="
    unmount
    rm -rf --one-file-system "$CHROOT"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-dev,gcc,g++,make,git,ca-certificates,procps \
        "$SUITE" "$CHROOT" "$MIRROR" > "$CHROOT.log" 2>&1 || { tail -20 "$CHROOT.log"; exit 1; }
    touch "$CHROOT/.hpc-debootstrap-done"
fi
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/certs/"
for m in "${MOUNTS[@]}"; do
    mountpoint -q "$CHROOT/$m" || mount --bind "/$m" "$CHROOT/$m"
done

rm -rf "$CHROOT/root/hpc"
mkdir -p "$CHROOT/root/hpc"
(cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf -) \
    | tar -xf - -C "$CHROOT/root/hpc"
echo "== $(chroot "$CHROOT" python3 --version) (Debian $SUITE) =="
# the numba cache of this venv stays in the chroot's copy (beside the sources there)
chroot "$CHROOT" env HOME=/root NUMBA_THREADING_LAYER=omp bash -euc '
    cd /root/hpc
    # a repository of the files copied, for tests/test_packaging.py (it builds the sdist from what git tracks)
    git -c init.defaultBranch=main init -q && git add -A
    make install > /tmp/hpc-install.log 2>&1 || { tail -30 /tmp/hpc-install.log; exit 1; }
    .venv/bin/python -m pip list 2>/dev/null | grep -E -i "^(numpy|numba|llvmlite|scipy|mpi4py) "
    .venv/bin/python scripts/demo.py > /dev/null
    .venv/bin/python -m pytest -m "not mpi" -q -n 2 --dist loadfile -p no:cacheprovider \
        tests/kernels tests/test_packaging.py tests/test_typing.py
    HPC_MPI_CHECK=1 timeout 600 .venv/bin/mpiexec -n 2 .venv/bin/python -m pytest -m mpi -q -p no:cacheprovider \
        --timeout 90 --timeout-method=thread tests/mpi/test_collectives.py tests/mpi/test_fused.py
'
