"""The house rules of the import graph (docs/architecture.md): rooms stack, and no module
cycle. A test, so a shortcut that breaks them fails here instead of growing quietly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.factories import REPO

ROOT = REPO
# bottom first: a room may import only rooms before it
ROOMS = ("core", "probes", "detector", "alerts", "daemon")


def _modules(root: Path = ROOT) -> dict[str, Path]:
    mods = {}
    for room in ROOMS:
        for p in (root / room).rglob("*.py"):
            parts = p.relative_to(root).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            found.add(n.module)
            found.update(f"{n.module}.{a.name}" for a in n.names)
    return {m for m in found if m.split(".")[0] in ROOMS}


def _upward(root: Path = ROOT) -> list[str]:
    upward = []
    for mod, path in _modules(root).items():
        room = ROOMS.index(mod.split(".")[0])
        for imp in _imports(path, top_level_only=False):  # a lazy import is an import too
            if ROOMS.index(imp.split(".")[0]) > room:
                upward.append(f"{mod} -> {imp}")
    return sorted(upward)


def test_rooms_import_only_rooms_below_them() -> None:
    upward = _upward()
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = {m: {i for i in _imports(p, top_level_only=True) if i in mods and i != m} for m, p in mods.items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for n in sorted(graph[m]):
            if seen.get(n) == 1:
                cycles.append(" -> ".join([*path[path.index(n):], n]) if n in path else f"{m} -> {n}")
            elif n not in seen:
                visit(n, [*path, n])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "x.py").write_text("def f():\n    from daemon.config import Settings\n")
    assert _upward(tmp_path) == ["probes.x -> daemon.config", "probes.x -> daemon.config.Settings"]


def test_sources_cite_only_the_repos_own_docs() -> None:
    """Comments point to docs/ (in the checkout), never to planning files a user lacks."""
    bad = []
    for room in (*ROOMS, "bench", "grafana", "deploy", "tests"):
        for p in (ROOT / room).rglob("*.py"):
            for n, line in enumerate(p.read_text().splitlines(), 1):
                if re.search(r"\.\./shared|(?<!docs/)\b(DESIGN|wire-formats)(\.md)? ?§", line):
                    bad.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_loading_the_config_imports_no_numerics() -> None:
    """`llm-vitals check` reads the config only: the detector's statistics (numpy, scipy)
    stay out of it (detector.config and detector.params are plain)."""
    import subprocess
    import sys

    code = "import sys, daemon.config; print(sorted(m for m in ('numpy', 'scipy', 'detector.core') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
