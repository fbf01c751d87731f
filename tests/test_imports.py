"""The module graph: every module imports on its own, imports form no cycle, and the core stays
free of chat platforms.

An import cycle works or fails depending on which module of it is imported first (a fresh
`import bot.core.fetch` once raised ImportError on a partially initialised module), so cycles are
found in the source, lazy imports inside functions included: a lazy import that only hides a cycle
is still one. Imports under `if TYPE_CHECKING:` never run and are not counted.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "summarizer")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """The project modules `path` imports when it runs (at the top or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {id(node) for stmt in ast.walk(tree) if isinstance(stmt, ast.If)
               and "TYPE_CHECKING" in ast.unparse(stmt.test) for node in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from bot.core import fetch`
    return {name for name in found if name in MODULES and name not in ("bot", "bot.core", "bot.adapters")}


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_registry_imports_only_the_value_types():
    assert GRAPH["bot.core.registry"] <= {"bot.core.values"}


def test_ingest_and_fetch_share_extraction_instead_of_importing_each_other():
    assert "bot.core.extract" in GRAPH["bot.core.ingest"] and "bot.core.extract" in GRAPH["bot.core.fetch"]
    assert "bot.core.fetch" not in GRAPH["bot.core.ingest"] and "bot.core.ingest" not in GRAPH["bot.core.extract"]


@pytest.mark.parametrize("module", sorted(name for name in MODULES if not name.endswith("__main__")))
def test_every_module_imports_alone(module):
    """In a fresh interpreter, whichever module comes first (`bot.__main__` runs the CLI, so it is left out)."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_core_never_imports_a_chat_platform():
    """The core, the summarizer, the commands they define and the CLI load no Discord or Slack library."""
    core = [name for name in MODULES if name.startswith(("bot.core.", "summarizer")) or name == "bot.cli"]
    script = ("import importlib, sys\n"
              f"for name in {core!r}: importlib.import_module(name)\n"
              "from bot.core.registry import load_commands\n"
              "load_commands()\n"
              "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
              "('discord', 'slack_bolt', 'slack_sdk', 'aiohttp')}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
