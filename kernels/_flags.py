"""The fastmath flag sets of the kernels, and why each kernel family gets the one it gets.

LLVM vectorizes a floating-point reduction (``acc += x[i]``) only when it may reorder the additions, so every
reduction carries ``reassoc``; ``contract`` lets it fuse ``a*x + y`` into one FMA. Neither changes what a NaN or
an infinity does: ``nnan``/``ninf`` would let LLVM assume there are none, so a NaN could vanish from ``min`` or a
comparison be folded away; no kernel sets them. ``nsz`` and ``arcp`` (ignore the sign of zero, use reciprocals)
are set only where the result cannot show the difference (``NO_NAN_CHANGES``). Kernels whose semantics hang on
ordered comparisons with NaN (``min``/``max``/``argmin``/``argmax``/``histogram``) and the compensated sum (whose
error terms reassociation would cancel) run without fastmath (``EXACT``). ``min``/``max`` (and the block pass of
``argmin``/``argmax``) vectorize all the same: they reduce with ``llvm.minimum``/``llvm.maximum``, which propagate
NaN and need no flag to be reordered (``hpc.kernels.intrinsics``).
"""

from __future__ import annotations

__all__ = ["ELEMENTWISE", "EXACT", "NO_NAN_CHANGES", "REDUCE"]

#: reductions (sum, dot, asum, nrm2, mean/var blocks, row reductions): reorder and fuse
REDUCE = {"reassoc", "contract"}
#: elementwise maps (axpy, a*x+b*y+c, stencil): fuse multiply-adds; nothing to reorder
ELEMENTWISE = {"contract"}
#: row kernels whose NaN and inf behaviour does not depend on the sign of zero or on exact division
NO_NAN_CHANGES = {"reassoc", "contract", "nsz", "arcp"}
#: ordered comparisons and compensated sums: IEEE semantics exactly
EXACT = False
