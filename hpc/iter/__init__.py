"""Rayon-style parallel iterators: ``par_iter(xs).map(f).filter(p).sum()`` on threads, processes or serially.

Typically all you change is the first call: ``sum(f(x) for x in xs)`` becomes ``par_iter(xs).map(f).sum()``.
How chains run (chunks, stages, the fixed combination tree) is explained in ``hpc/iter/plumbing/README.md``.
"""

from hpc.iter.par_iter import ParIter
from hpc.iter.sources import par_bridge, par_chunks, par_iter, par_range

__all__ = ["ParIter", "par_bridge", "par_chunks", "par_iter", "par_range"]
