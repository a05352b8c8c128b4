"""The import graph of src/, read from the source with `ast` (imports inside functions too):
what the layering test checks and what the DVC-deps test derives each stage's code deps from."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name ("src.lib.config"), packages' __init__ included."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(module: str) -> dict[str, list[str]]:
    """The src modules `module` imports, each with where: "top" or the function it sits in."""
    known = modules()
    found: dict[str, list[str]] = {}

    def visit(node, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                # `from src.lib import config` names a module; `from src.lib.data import load` a name in one.
                names = [
                    f"{child.module}.{alias.name}" if f"{child.module}.{alias.name}" in known else child.module
                    for alias in child.names
                ]
            for name in names:
                if name in known and name != module:
                    found.setdefault(name, []).append(where)
            visit(child, inner)

    visit(ast.parse(known[module].read_text()), "top")
    return found


def closure(module: str) -> set[str]:
    """module, every src module it imports directly or not, and the packages they sit in (whose
    __init__ importing them runs first)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imports(name))
            todo.extend(".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1))  # its packages
    return seen


def layer(module: str) -> str:
    """ "library" (src.lib.*), "stage" (src.stages.*), "command" (src.<name>) or "package" (an __init__)."""
    if modules()[module].name == "__init__.py":
        return "package"
    if module.startswith("src.lib."):
        return "library"
    if module.startswith("src.stages."):
        return "stage"
    return "command"


def file_of(module: str) -> str:
    return modules()[module].relative_to(SRC.parent).as_posix()
