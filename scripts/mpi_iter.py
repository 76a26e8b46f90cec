"""Parallel iterators across MPI ranks: each rank runs its share of the chunks, every rank gets the result.

Run with:  mpiexec -n 4 python scripts/mpi_iter.py
The float sum printed is the same bits as on one process, whatever the number of ranks.
"""

from __future__ import annotations

import math

from hpc import mpi, par_range


def collatz_steps(n: int) -> int:
    steps = 0
    while n > 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def main() -> None:
    comm = mpi.world()
    n = 200_000
    longest = par_range(1, n).with_backend("mpi").max_by_key(collatz_steps)
    harmonic = par_range(1, n).map(lambda k: 1.0 / k).with_backend("mpi").sum()
    primes = par_range(2, 20_000).filter(lambda k: all(k % d for d in range(2, math.isqrt(k) + 1)))
    count = primes.with_backend("mpi").count()
    serial = par_range(1, n).map(lambda k: 1.0 / k).with_backend("serial").sum()
    if comm.rank == 0:
        print(f"ranks: {comm.size}")
        print(f"longest Collatz chain below {n}: {longest} ({collatz_steps(longest)} steps)")
        print(f"harmonic sum H({n - 1}) = {harmonic!r}; same bits as one process: {harmonic.hex() == serial.hex()}")
        print(f"primes below 20000: {count}")


if __name__ == "__main__":
    main()
