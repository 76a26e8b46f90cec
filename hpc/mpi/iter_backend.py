"""The ``mpi`` backend of parallel iterators: each rank runs a contiguous share of the chunks (SPMD)."""

from __future__ import annotations

import pickle as _pickle
from typing import Any

from hpc.iter.plumbing.drive import BACKENDS, Backend, in_worker, register
from hpc.iter.plumbing.plan import ChunkFailure
from hpc.iter.plumbing.shipping import revived, shippable, spmd_dumps
from hpc.mpi.collectives import allgather_objects
from hpc.mpi.comm import world
from hpc.mpi.guard import RankMismatchError

__all__ = ["MpiBackend"]


class MpiBackend(Backend):
    """Chunks split into ``size`` contiguous shares; each rank runs its share on its thread pool.

    Every rank must build the same iterator (SPMD). The partial results of every chunk are allgathered, so every rank
    combines the same partials in the same fixed tree: the result equals the single-process result bit for bit, and
    every rank gets it. A failure on any rank is raised on every rank (lowest chunk first), never a hang; so is a
    result that does not pickle (results travel with cloudpickle, the script's own classes by name). Called inside a
    worker (nested in another parallel iterator, a ``join`` or a joblib task), it runs on that rank's threads instead.
    """

    name = "mpi"
    what = "with_backend('mpi')"  # the collective's name in reports

    def run(self, plan, terminal, spans, ctx, progress):
        if in_worker():
            # A nested call: each rank's workers are at different outer items, in no agreed order, so the ranks
            # cannot meet in a collective here. The threads give the same result, which is what every rank gets.
            return BACKENDS["threads"].run(plan, terminal, spans, ctx, progress)
        comm = world()
        size, rank = comm.size, comm.rank
        lo, hi = rank * len(spans) // size, (rank + 1) * len(spans) // size
        mine = spans[lo:hi]
        out: dict[int, Any] = {}
        failure, own = None, None
        try:
            if mine:
                out = BACKENDS["threads"].run(plan, terminal, mine, ctx, progress)
        except ChunkFailure as exc:
            failure, own = (shippable(exc.error), exc.chunk, exc.item, exc.span), exc
        signature = (len(spans), spans[-1][2] if spans else 0)
        # This rank's share goes pickled already: a result that does not pickle is reported on every rank, where
        # mpi4py's allgather would raise on this rank alone and leave the others waiting.
        share, unsent = _pickled((out, failure))
        # the name goes first, as in check mode's signatures: a rank in another collective's check is reported
        everyone = allgather_objects(comm._engine, self.what, (self.what, signature, share, unsent))
        if any(e[:2] != (self.what, signature) for e in everyone):
            sizes = ", ".join(
                f"rank {r}: {e[1][1]} items" if e[0] == self.what else f"rank {r}: in {e[0]!r}"
                for r, e in enumerate(everyone)
            )
            raise RankMismatchError(f"{self.what} needs the same iterator on every rank; got {sizes}")
        unsendable = [(r, e[3]) for r, e in enumerate(everyone) if e[3] is not None]
        if unsendable:
            said = "; ".join(f"rank {r}: {why}" for r, why in unsendable)
            raise TypeError(
                f"{self.what} must pickle each rank's results to send them to the other ranks, and could not ({said}); "
                "use with_backend('threads') for results that cannot be pickled"
            )
        shares = [(out, None) if r == rank else _pickle.loads(e[2]) for r, e in enumerate(everyone)]
        # another rank's exception comes back rebuilt, its traceback as the cause; this rank's is raised as it was
        failures = [ChunkFailure(revived(f[0]), *f[1:]) for _, f in shares if f is not None]
        if own is not None:
            failures.append(own)
        if failures:
            raise min(failures, key=lambda f: f.chunk)
        merged: dict[int, Any] = {}
        for part, _ in shares:
            merged.update(part)
        return merged


def _pickled(share: Any) -> tuple[bytes | None, str | None]:
    """``share`` pickled for the other ranks, or why it could not be."""
    try:
        return spmd_dumps(share), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


register(MpiBackend())
