"""hpc.mpi's shape, checked on the source: one module imports mpi4py, no import cycle, and Comm is a thin front whose
state nobody else sets or reads (docs/architecture.md, "hpc.mpi")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hpc import mpi

PACKAGE = Path(mpi.__file__).resolve().parent
SOURCES = sorted(PACKAGE.glob("*.py"))


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports anywhere (module level or inside functions), absolute names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = "hpc.mpi" + (f".{module}" if module else "")
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_only_the_mpi_module_imports_mpi4py():
    importers = []
    for path in SOURCES:
        text = path.read_text()
        if any(name.startswith("mpi4py") for name in _imports(path)) or re.search(r"[\"']mpi4py", text):
            importers.append(path.name)
    assert importers == ["_mpi.py"]


def test_no_import_cycle_between_the_modules_of_hpc_mpi():
    modules = {f"hpc.mpi.{p.stem}" for p in SOURCES if p.stem != "__init__"}
    edges = {
        f"hpc.mpi.{p.stem}": {m for m in _imports(p) if m in modules and m != f"hpc.mpi.{p.stem}"}
        for p in SOURCES
        if p.stem != "__init__"
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join((*path[path.index(module) :], module)))
        if module in done:
            return
        for target in sorted(edges[module]):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(modules):
        visit(module, ())


def test_comm_has_no_room_for_attributes_set_from_outside():
    comm = mpi.Comm(mpi.LocalComm())
    with pytest.raises(AttributeError):
        comm.node_window = object()  # type: ignore[attr-defined]
    assert set(mpi.Comm.__slots__) == {"mpi", "rank", "size", "_engine"}


def test_other_modules_read_no_private_state_of_a_comm_but_its_engine():
    """A ``Comm``'s only private attribute is ``_engine``; modules that hold an engine read its attributes."""
    offenders = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in re.findall(r"\bcomm\._(\w+)", line):
                if name != "engine":
                    offenders.append(f"{path.name}:{number}: comm._{name}")
    assert offenders == []


def test_comm_methods_are_a_line_or_two():
    tree = ast.parse((PACKAGE / "comm.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Comm")
    long = []
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # past the docstring
            if len(body) > 2 and node.name != "__init__":
                long.append(node.name)
    assert long == []
