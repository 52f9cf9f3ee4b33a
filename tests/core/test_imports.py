"""The package's modules import one another in one direction only: no cycle, not even through
``TYPE_CHECKING`` or an import inside a function (``core.errors`` and ``core.results`` had one)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_sms"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every package module ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    graph = {name: imports_of(path, known) - {name} for name, path in files.items()}
    for name in graph:  # a package's __init__ importing its own submodules is how lazy exports work
        graph[name] = {
            dep for dep in graph[name] if not (dep.startswith(name + ".") and files[name].name == "__init__.py")
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                found.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_core_errors_does_not_import_core_results() -> None:
    graph = import_graph()
    assert "airflow_provider_sms.core.results" not in graph["airflow_provider_sms.core.errors"]
    assert "airflow_provider_sms.core.errors" in graph["airflow_provider_sms.core.results"]


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []
