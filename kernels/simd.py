"""Read a compiled kernel's assembly: the widest vector registers, packed floating-point and FMA instructions.

``inspect(dispatcher)`` answers "did LLVM vectorize this?" from the machine code numba produced for this CPU,
so a test can assert it and a benchmark can print it. Packed instructions end in ``pd``/``ps`` (``vaddpd``,
``vfmadd231ps``); scalar ones in ``sd``/``ss``. Register width: ``xmm`` 128 bits, ``ymm`` 256, ``zmm`` 512.
"""

from __future__ import annotations

import re as _re
from typing import Any as _Any

import numba as _numba

__all__ = ["inspect"]

_REG_BITS = {"xmm": 128, "ymm": 256, "zmm": 512}
_REG = _re.compile(r"%?\b([xyz]mm)\d+\b")
_MNEMONIC = _re.compile(r"^\s*(v?[a-z][a-z0-9]*)\b", _re.MULTILINE)
_PACKED_FP = _re.compile(r"^v?(add|sub|mul|div|max|min|sqrt|fn?m(add|sub)\d*|cmp\w*|and|or|xor|blendm?)p[sd]$")
_FMA = _re.compile(r"^vfn?m(add|sub)\d*[ps][sd]$")


def inspect(dispatcher: _Any, signature: _Any = None) -> dict[str, _Any]:
    """Return what the assembly of a numba kernel shows about its SIMD use.

    Args:
        dispatcher: an ``@njit`` function (a numba ``Dispatcher``).
        signature: the signature to look at, in any form numba's ``compile`` takes (a tuple of numba types, as in
            ``dispatcher.signatures``, or a string such as ``"(float64[::1],)"``); it is compiled for the purpose.
            ``None`` takes every signature this process has already run the kernel with.

    Returns:
        A dict: ``signatures`` (as strings), ``vector_bits`` (widest register width used: 128, 256 or 512; 0 if
        no vector register appears), ``registers`` (``{"xmm": n, "ymm": n, "zmm": n}`` counts),
        ``packed_fp`` (sorted packed floating-point mnemonics), ``fma`` (sorted FMA mnemonics, packed or scalar),
        ``vectorized`` (packed FP arithmetic on wider than 128 bits, or any packed FP add/mul/FMA).

    Raises:
        TypeError: ``dispatcher`` is not a numba dispatcher.
        ValueError: no signature was given and the kernel has not run yet in this process.

    Example:
        >>> import numpy as np; from hpc.kernels import reductions, simd
        >>> reductions.sum(np.ones(4)) and simd.inspect(reductions._sum_serial)["vectorized"]
        True
    """
    if not hasattr(dispatcher, "inspect_asm") or not hasattr(dispatcher, "signatures"):
        hint = ""
        name, module = getattr(dispatcher, "__name__", ""), getattr(dispatcher, "__module__", "") or ""
        if callable(dispatcher) and module.startswith("hpc.kernels"):  # a public kernel: its loops are beside it
            hint = (f" ({name} is the Python wrapper of compiled loops: inspect one of those, such as "
                    f"{module}._{name}_serial or _{name}_parallel where they exist)")
        raise TypeError(f"dispatcher must be a numba @njit function; got {type(dispatcher).__name__}{hint}")
    signatures = [signature] if signature is not None else list(dispatcher.signatures)
    if not signatures:
        raise ValueError(
            "the kernel has not run in this process: give a signature, for example inspect(kernel, \"(float64[::1],)\")"
        )
    # code loaded from numba's on-disk cache carries no assembly: compile an uncached twin with the same options
    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("cache", "nopython")}
    twin = _numba.njit(**options)(dispatcher.py_func)
    asm_by_sig = {}
    for sig in signatures:
        twin.compile(sig)
        compiled = twin.signatures[-1]  # the signature as numba keys it (a string names the same types)
        asm_by_sig[compiled] = twin.inspect_asm(compiled)
    text = "\n".join(asm_by_sig.values())
    regs = {kind: 0 for kind in _REG_BITS}
    for kind in _REG.findall(text):
        regs[kind] += 1
    mnemonics = set(_MNEMONIC.findall(text))
    packed = sorted(m for m in mnemonics if _PACKED_FP.match(m))
    fma = sorted(m for m in mnemonics if _FMA.match(m))
    bits = max((_REG_BITS[k] for k, count in regs.items() if count), default=0)
    arithmetic = [m for m in packed if _re.match(r"^v?(add|mul|fn?m)", m)]
    return {
        "signatures": [str(sig) for sig in asm_by_sig],
        "vector_bits": bits,
        "registers": regs,
        "packed_fp": packed,
        "fma": fma,
        "vectorized": bool(arithmetic),
    }
