"""The layering of docs/architecture.md, checked on the source: every import between hpc's parts (at module level or
inside a function) must be an edge the architecture allows, so a new dependency cannot slip in unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Which parts each part may import (besides itself). A part is a subpackage or a top-level module of hpc; "hpc" is
#: the package root (its public names come from _core, iter and config). Keep in step with docs/architecture.md.
LEAVES = {"config", "_optional", "_launcher", "_numba_probe", "_tbb", "_numba_cache"}
ALLOWED = {
    "config": set(),
    "_numba_probe": set(),
    "_tbb": set(),
    "_numba_cache": set(),
    "_launcher": {"config"},
    "_optional": {"config", "_launcher"},
    "_core": {"config", "hpc", "_numba_probe"},  # whether numba's threading layer has started
    "iter": {"_core", "config", "hpc", "_launcher"},  # the processes backend reads the rank marker
    # cuda: only to hand a DeviceArray to hpc.cuda.twins (kernels/_dispatch.py); _numba_probe: the layer started?
    "kernels": {"config", "cuda", "_numba_probe"},
    "cuda": {"config", "_optional", "_launcher"},
    "mpi": LEAVES | {"_core", "iter", "kernels", "hpc"},
    "ml": LEAVES | {"_core", "iter", "kernels", "cuda", "mpi", "hpc"},
    "info": LEAVES | {"cuda", "mpi", "hpc"},
    "bench": LEAVES | {"_core", "iter", "kernels", "cuda", "mpi", "ml", "info", "hpc"},
    "cli": LEAVES | {"bench", "info", "hpc"},
    "__main__": {"cli"},
    "hpc": {"_core", "iter", "config", "_numba_cache"},
}
#: Imports under ``if TYPE_CHECKING:`` (never run) that a part may make beyond ALLOWED: the root names its lazy
#: submodules, which its ``__getattr__`` loads on first use, so that type checkers see ``hpc.mpi.world()``.
TYPE_ONLY = {"hpc": {"mpi", "cuda", "kernels", "ml", "bench", "info"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "kernels":  # installed as hpc.kernels
        parts = ["hpc", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _part(module: str) -> str | None:
    pieces = module.split(".")
    if pieces[0] != "hpc":
        return None
    if len(pieces) == 1 or pieces[1] not in ALLOWED:
        return "hpc"  # the root package, or a public name it exports
    return pieces[1]


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """The import statements inside ``if TYPE_CHECKING:`` blocks (also ``_TYPE_CHECKING``, ``typing.TYPE_CHECKING``)."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).split(".")[-1].lstrip("_") == "TYPE_CHECKING":
            found |= {inner for part in node.body for inner in ast.walk(part)
                      if isinstance(inner, (ast.Import, ast.ImportFrom))}
    return found


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """Return the hpc modules (or names) ``path`` imports, with their line numbers and whether the import is for
    type checkers only."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _type_checking_only(tree)
    for node in ast.walk(tree):
        typed = node in typing_only
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, typed) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(f"{module}.{alias.name}", node.lineno, typed) for alias in node.names]
    return found


def test_every_import_between_parts_is_allowed():
    sources = sorted([*ROOT.glob("hpc/**/*.py"), *ROOT.glob("kernels/**/*.py")])
    assert len(sources) > 50
    wrong = []
    for path in sources:
        here = _part(_module_name(path))
        for target, line, typed in _imports(path):
            there = _part(target)
            if there is None or there == here:
                continue
            if there not in ALLOWED.get(here, set()) | (TYPE_ONLY.get(here, set()) if typed else set()):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {target} ({there})")
    assert not wrong, "imports against docs/architecture.md's layering:\n" + "\n".join(wrong)


def test_the_contract_itself_has_no_cycle():
    """The allowed edges form layers: no part may reach itself (kernels -> cuda is one way)."""

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in ALLOWED.get(start, set()) - {"hpc"}:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [part for part in ALLOWED if reaches(part, part, {part})] == []
