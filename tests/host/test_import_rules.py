"""The host's import rules, read from the source (every import, those under TYPE_CHECKING and
inside functions included):

* no import cycle between host modules;
* nothing imports `comptoir.api` but the command line and the app; the counter screen, the
  other HTTP front, shares the API's plumbing through `comptoir.http`, and the API does not
  import the screen either;
* nothing in `api/` opens a database or a transaction: no sqlite3, no storage layer, no
  TransactionStore.create / TransactionOpener.
"""

from __future__ import annotations

import ast
from pathlib import Path

HOST = Path(__file__).resolve().parents[2] / "host"
ROOT_PKG = "comptoir"


def modules() -> dict[str, Path]:
    found = {}
    for path in (HOST / ROOT_PKG).rglob("*.py"):
        parts = list(path.relative_to(HOST).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports(name: str) -> set[str]:
    """The host modules `name` imports: `from pkg import sub` counts as pkg.sub when sub is a
    module, else as pkg."""
    tree = ast.parse(MODULES[name].read_text())
    here = name if is_package(name) else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [(base, [a.name for a in node.names])]
        else:
            continue
        for base, names in targets:
            if base not in MODULES:
                continue
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            out.update(subs)
            if len(subs) < len(names) or not names:
                out.add(base)
    out.discard(name)
    return out


GRAPH = {name: imports(name) for name in MODULES}


def test_no_import_cycle() -> None:
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_command_line_and_the_app_import_the_api() -> None:
    allowed = {"comptoir.cli", "comptoir.app"}
    offenders = sorted(
        name for name, deps in GRAPH.items()
        if not name.startswith("comptoir.api") and name not in allowed
        and any(d == "comptoir.api" or d.startswith("comptoir.api.") for d in deps))
    assert not offenders


def test_the_api_and_the_screen_do_not_import_each_other() -> None:
    def front(name: str) -> str | None:
        for pkg in ("comptoir.api", "comptoir.screen"):
            if name == pkg or name.startswith(pkg + "."):
                return pkg
        return None

    crossings = sorted(
        f"{name} -> {d}" for name, deps in GRAPH.items() for d in deps
        if front(name) and front(d) and front(name) != front(d))
    assert not crossings


def test_the_api_opens_no_database_and_no_transaction() -> None:
    for name, path in MODULES.items():
        if not name.startswith("comptoir.api"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name != "sqlite3" for a in node.names), name
            if isinstance(node, ast.ImportFrom):
                assert node.module not in ("sqlite3", "comptoir.storage", "comptoir.opener"), name
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in ("create", "connect", "open_sqlite"), \
                    f"{name}:{node.lineno}"
