"""The machine report behind ``hpc info``: cores, SIMD, caches, numba, MPI and GPUs, like ``numba -s``."""

from __future__ import annotations

import os as _os
import platform as _platform
import socket as _socket
import sys as _sys
import warnings as _warnings
from collections.abc import Callable as _Callable
from importlib import metadata as _metadata
from pathlib import Path as _Path
from typing import Any as _Any

from hpc import config as _config
from hpc._optional import optional_module, why_missing

__all__ = ["collect", "cpu_line", "format_report", "gather_reports", "detect_launcher", "world_comm"]

# Widest first: the first feature LLVM reports for the host names its SIMD ISA.
_SIMD_LADDER = (
    ("avx512f", 512),
    ("avx2", 256),
    ("avx", 256),
    ("sse4.2", 128),
    ("sve", 128),
    ("neon", 128),
)
_CACHE_DIR = _Path("/sys/devices/system/cpu/cpu0/cache")
_MACHINE_SECTIONS = ("cpu", "simd", "caches", "numba", "numpy", "python", "config", "mpi", "gpus")


def detect_launcher() -> dict[str, _Any] | None:
    """Return ``{"name", "rank", "size"}`` when an MPI launcher started this process, else ``None``.

    Only environment variables are read (:func:`hpc._launcher.detect`, where the launchers' tables live); MPI is
    not initialised. ``rank`` or ``size`` is ``None`` where the launcher does not say.
    """
    from hpc import _launcher

    return _launcher.detect()


def world_comm() -> _Any | None:
    """Return mpi4py's ``COMM_WORLD`` under an MPI launcher, else ``None`` (initialising MPI only then)."""
    if detect_launcher() is None:
        return None
    mpi = optional_module("mpi4py.MPI")
    return None if mpi is None else mpi.COMM_WORLD


def gather_reports(report: dict[str, _Any], comm: _Any | None = None, root: int = 0) -> list[dict] | None:
    """Gather every rank's report to ``root``.

    Args:
        report (dict): this rank's :func:`collect` result.
        comm (mpi4py.MPI.Comm or hpc.mpi.Comm or None): the communicator; ``None`` means :func:`world_comm`,
            and a single process (no launcher) gets ``[report]``.
        root (int): the rank that receives the list.

    Returns:
        The reports in rank order on ``root``, ``None`` on every other rank. Collective: every rank of
        ``comm`` must call it.

    .. seealso:: :meth:`mpi4py.MPI.Comm.gather`
    """
    if comm is None:
        comm = world_comm()
        if comm is None:
            return [report]
    comm = getattr(comm, "mpi", comm)
    return comm.gather(report, root=root)


def collect() -> dict[str, _Any]:
    """Return the machine report for this process as a JSON-ready dict.

    Every section is a dict or list, or a one-line string saying why it could not be read; this never
    raises for a missing or broken optional piece (a bad ``HPC_*`` value shows as the ``config`` string).
    Under an MPI launcher it initialises MPI (to read the rank); a single process initialises it only to read
    the library version.
    """
    return {
        "hpc": _guard(_hpc_version),
        "process": _guard(_process),
        "cpu": _guard(_cpu),
        "simd": _guard(_simd),
        "caches": _guard(_caches),
        "numba": _guard(_numba),
        "numpy": _guard(_numpy),
        "python": _guard(_python),
        "config": _guard(_config.snapshot),
        "mpi": _guard(_mpi),
        "gpus": _guard(_gpus),
    }


def format_report(reports: list[dict[str, _Any]]) -> str:
    """Return a human-readable report: machine-wide sections once (from the first report), then the ranks.

    Args:
        reports (list[dict]): :func:`collect` results, one per rank, as :func:`gather_reports` returns them.
    """
    if not reports:
        return "hpc: no reports"
    first = reports[0]
    lines = [f"hpc-substrate {first.get('hpc', '?')} machine report"]
    hosts = list(dict.fromkeys(str(_get(r, "process", "hostname")) for r in reports))
    processes = f"{len(reports)} process{'es' if len(reports) > 1 else ''}"
    lines.append(f"  {'hosts':<8} {', '.join(hosts)} ({processes})")
    for section in _MACHINE_SECTIONS:
        value = first.get(section, "missing from the report")
        try:
            if isinstance(value, str):
                text = f"none: {value}" if section == "gpus" else value
            else:
                text = _FORMATTERS[section](value)
        except Exception:
            text = repr(value)
        lines.append(f"  {section:<8} {text}")
    lines.append("  ranks")
    rows = [("rank", "host", "pid", "cpus")]
    for report in reports:
        proc = report.get("process")
        if isinstance(proc, dict):
            cpus = _ranges(proc.get("affinity") or [])
            rows.append((str(proc.get("rank")), str(proc.get("hostname")), str(proc.get("pid")), cpus))
        else:
            rows.append(("?", "?", "?", str(proc)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        lines.append("    " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ sections


def _guard(section: _Callable[[], _Any]) -> _Any:
    try:
        return section()
    except Exception as exc:  # a report never fails: each section degrades to the reason it could not be read
        return f"unavailable: {type(exc).__name__}: {exc}"


def _hpc_version() -> str:
    try:
        return _metadata.version("hpc-substrate")
    except _metadata.PackageNotFoundError:
        return "(not installed)"


def _process() -> dict[str, _Any]:
    rank, size = 0, 1
    launcher = detect_launcher()
    if launcher is not None:
        comm = world_comm()
        if comm is not None:
            rank, size = comm.Get_rank(), comm.Get_size()
        else:
            rank, size = launcher["rank"] or 0, launcher["size"] or 1
    return {
        "hostname": _socket.gethostname(),
        "pid": _os.getpid(),
        "rank": rank,
        "size": size,
        "affinity": sorted(_affinity()),
    }


def _cpu() -> dict[str, _Any]:
    processors = _cpuinfo()
    model = ""
    for key in ("model name", "Model", "Hardware", "cpu model", "cpu"):
        model = next((p[key] for p in processors if p.get(key)), "")
        if model:
            break
    logical = _os.cpu_count() or len(processors) or 1
    cores = {(p.get("physical id"), p["core id"]) for p in processors if "core id" in p}
    physical = len(cores) if cores and all("core id" in p for p in processors) else logical
    return {
        "model": model or _platform.processor() or _platform.machine() or "unknown",
        "machine": _platform.machine(),
        "logical_cores": logical,
        "physical_cores": physical,
        "affinity_cpus": len(_affinity()),
    }


def _simd() -> dict[str, _Any]:
    from llvmlite import binding as _llvm

    features = _llvm.get_host_cpu_features()
    isa, bits = next(((name, bits) for name, bits in _SIMD_LADDER if features.get(name)), ("none", 64))
    return {
        "llvm_cpu": str(_llvm.get_host_cpu_name()),
        "isa": isa,
        "vector_bits": bits,
        "fma": bool(features.get("fma")),
        # numba compiles for the host unless NUMBA_CPU_NAME / NUMBA_CPU_FEATURES say otherwise
        "numba_cpu_name": _os.environ.get("NUMBA_CPU_NAME") or None,
    }


def _caches() -> list[dict[str, _Any]] | str:
    found = []
    for index in sorted(_CACHE_DIR.glob("index*")):
        try:
            level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        found.append({"level": int(level), "type": kind, "size": size})
    return found or f"not readable from {_CACHE_DIR}"


def _numba() -> dict[str, _Any]:
    import numba

    out: dict[str, _Any] = {"version": numba.__version__, "num_threads": int(numba.config.NUMBA_NUM_THREADS)}
    try:
        from hpc import _numba_probe

        with _warnings.catch_warnings():
            # numba may warn about an old TBB or OpenMP; the layer it picked is still the answer
            _warnings.simplefilter("ignore")
            out["threading_layer"] = _numba_probe.threading_layer()
    except Exception as exc:
        out["threading_layer"] = f"unavailable: {type(exc).__name__}: {exc}"
    return out


def _numpy() -> dict[str, _Any]:
    import numpy

    out: dict[str, _Any] = {"version": numpy.__version__}
    try:
        import threadpoolctl

        out["blas"] = sorted(  # in a fixed order: the order libraries were loaded in changes from run to run
            f"{_owner(lib.get('filepath'))}{lib.get('internal_api')} {lib.get('version')} "
            f"({lib.get('threading_layer', '?')}, {lib.get('num_threads')} threads)"
            for lib in threadpoolctl.threadpool_info()
            if lib.get("user_api") == "blas"
        )
    except Exception as exc:
        out["blas"] = f"unavailable: {type(exc).__name__}: {exc}"
    return out


def _owner(path: object) -> str:
    """``"numpy's "`` for a library shipped in ``numpy.libs`` (a wheel's bundled libraries), else ``""``."""
    folder = _os.path.basename(_os.path.dirname(str(path or "")))
    return f"{folder[: -len('.libs')]}'s " if folder.endswith(".libs") else ""


def _python() -> dict[str, _Any]:
    return {
        "version": _platform.python_version(),
        "implementation": _platform.python_implementation(),
        "executable": _sys.executable,
    }


def _mpi() -> dict[str, _Any] | str:
    mpi4py = optional_module("mpi4py")
    if mpi4py is None:
        return "mpi4py is not installed (pip install mpi4py mpich)"
    launcher = detect_launcher()
    out: dict[str, _Any] = {"mpi4py": mpi4py.__version__, "launcher": launcher and launcher["name"]}
    mpi = optional_module("mpi4py.MPI")
    if mpi is None:
        out["library"] = f"mpi4py.MPI cannot be imported: {why_missing('mpi4py.MPI')}"
    else:
        text = mpi.Get_library_version().replace("\0", "").strip()  # Open MPI's ends in its C string's NUL
        out["library"] = " ".join(text.splitlines()[0].split()) if text else "unknown"
        out["standard"] = "{}.{}".format(*mpi.Get_version())
    return out


def _gpus() -> list[dict[str, _Any]] | str:
    from hpc import cuda

    if cuda.is_available():
        return [device.as_dict() for device in cuda.devices()]
    return cuda.unavailable_reason()


# ------------------------------------------------------------------------------------------------- helpers


def _affinity() -> set[int]:
    try:
        return set(_os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(_os.cpu_count() or 1))


def _cpuinfo() -> list[dict[str, str]]:
    try:
        text = _Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    processors: list[dict[str, str]] = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            processors.append(entry)
    return processors


def _get(report: dict[str, _Any], section: str, key: str) -> _Any:
    value = report.get(section)
    return value.get(key, "?") if isinstance(value, dict) else "?"


def _ranges(cpus: list[int]) -> str:
    spans: list[list[int]] = []
    for cpu in sorted(cpus):
        if spans and cpu == spans[-1][1] + 1:
            spans[-1][1] = cpu
        else:
            spans.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "?"


def cpu_line(cpu: dict[str, _Any] | None = None) -> str:
    """Return ``hpc info``'s one-line CPU description, of this machine or of a report's ``cpu`` entry; never raises.

    Every benchmark prints it beside its figures, in these words.
    """
    try:
        return _fmt_cpu(_cpu() if cpu is None else cpu)
    except Exception:  # an entry that holds an error text, or a machine the probe cannot read
        return str(cpu) if cpu is not None else (_platform.processor() or _platform.machine())


def _fmt_cpu(cpu: dict[str, _Any]) -> str:
    return (
        f"{cpu['model']} ({cpu['machine']}): {cpu['logical_cores']} logical cores, "
        f"{cpu['physical_cores']} physical, {cpu['affinity_cpus']} in this process's affinity mask"
    )


def _fmt_simd(simd: dict[str, _Any]) -> str:
    text = f"{simd['isa']} ({simd['vector_bits']}-bit vectors){' + fma' if simd['fma'] else ''}"
    text += f", LLVM host CPU {simd['llvm_cpu']}"
    if simd.get("numba_cpu_name"):
        text += f", numba targets NUMBA_CPU_NAME={simd['numba_cpu_name']}"
    return text


def _fmt_caches(caches: list[dict[str, _Any]]) -> str:
    suffix = {"Data": "d", "Instruction": "i"}
    return ", ".join(f"L{c['level']}{suffix.get(c['type'], '')} {c['size']}" for c in caches)


def _fmt_numba(info: dict[str, _Any]) -> str:
    return f"{info['version']}, threading layer {info['threading_layer']}, {info['num_threads']} threads"


def _fmt_numpy(info: dict[str, _Any]) -> str:
    blas = info.get("blas")
    blas_text = blas if isinstance(blas, str) else "; ".join(blas) or "no BLAS found by threadpoolctl"
    return f"{info['version']}, BLAS loaded in this process: {blas_text}"


def _fmt_python(info: dict[str, _Any]) -> str:
    return f"{info['version']} ({info['implementation']}) {info['executable']}"


def _fmt_config(snapshot: dict[str, _Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in snapshot.items())


def _fmt_mpi(info: dict[str, _Any]) -> str:
    text = f"mpi4py {info['mpi4py']}, {info['library']}"
    if info.get("standard"):
        text += f" (MPI {info['standard']})"
    launcher = info.get("launcher")
    return text + (f", launched by {launcher}" if launcher else ", no launcher (single process)")


def _fmt_gpus(gpus: list[dict[str, _Any]]) -> str:
    if not gpus:
        return "none"
    rows = []
    for g in gpus:
        major, minor = g["compute_capability"]
        rows.append(
            f"[{g['index']}] {g['name']}, sm_{major}{minor}, {g['total_memory'] / 2**30:.1f} GiB, "
            f"{g['multiprocessor_count']} SMs, {g['pci_bus_id']}"
        )
    return "; ".join(rows)


_FORMATTERS: dict[str, _Callable[[_Any], str]] = {
    "cpu": _fmt_cpu,
    "simd": _fmt_simd,
    "caches": _fmt_caches,
    "numba": _fmt_numba,
    "numpy": _fmt_numpy,
    "python": _fmt_python,
    "config": _fmt_config,
    "mpi": _fmt_mpi,
    "gpus": _fmt_gpus,
}
