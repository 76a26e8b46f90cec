"""The ``mpi`` backend of parallel iterators: each rank runs a contiguous share of the chunks (SPMD)."""

from __future__ import annotations

from typing import Any

from hpc.iter.plumbing.drive import BACKENDS, Backend, register
from hpc.iter.plumbing.plan import ChunkFailure
from hpc.mpi.collectives import allgather_objects
from hpc.mpi.comm import world
from hpc.mpi.guard import RankMismatchError

__all__ = ["MpiBackend"]


class MpiBackend(Backend):
    """Chunks split into ``size`` contiguous shares; each rank runs its share on its thread pool.

    Every rank must build the same iterator (SPMD). The partial results of every chunk are allgathered, so every rank
    combines the same partials in the same fixed tree: the result equals the single-process result bit for bit, and
    every rank gets it. A failure on any rank is raised on every rank (lowest chunk first), never a hang.
    """

    name = "mpi"
    what = "with_backend('mpi')"  # the collective's name in reports

    def run(self, plan, terminal, spans, ctx, progress):
        comm = world()
        size, rank = comm.size, comm.rank
        share = len(spans)
        lo, hi = rank * share // size, (rank + 1) * share // size
        mine = spans[lo:hi]
        out: dict[int, Any] = {}
        failure = None
        try:
            if mine:
                out = BACKENDS["threads"].run(plan, terminal, mine, ctx, progress)
        except ChunkFailure as exc:
            failure = (exc.error, exc.chunk, exc.item, exc.span)
        signature = (len(spans), spans[-1][2] if spans else 0)
        # the name goes first, as in check mode's signatures: a rank in another collective's check is reported
        everyone = allgather_objects(comm._engine, self.what, (self.what, signature, out, failure))
        if any(e[:2] != (self.what, signature) for e in everyone):
            sizes = ", ".join(
                f"rank {r}: {e[1][1]} items" if e[0] == self.what else f"rank {r}: in {e[0]!r}"
                for r, e in enumerate(everyone)
            )
            raise RankMismatchError(f"{self.what} needs the same iterator on every rank; got {sizes}")
        failures = [ChunkFailure(*f) for _, _, _, f in everyone if f is not None]
        if failures:
            raise min(failures, key=lambda f: f.chunk)
        merged: dict[int, Any] = {}
        for _, _, part, _ in everyone:
            merged.update(part)
        return merged


register(MpiBackend())
