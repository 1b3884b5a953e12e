"""No host module over MAX_LINES lines (issue 16): a module that grows past it does more than
one job and is split by job, as screen/server.py, tokens/claims.py, transactions/store.py and
rights/cache.py were."""

from __future__ import annotations

from pathlib import Path

HOST = Path(__file__).resolve().parents[2] / "host"
MAX_LINES = 450


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_host_module_is_over_the_cap() -> None:
    over = {}
    for path in sorted(HOST.rglob("*.py")):
        name = path.relative_to(HOST).as_posix()
        n = lines(path)
        if n > MAX_LINES:
            over[name] = n
    assert not over, f"over {MAX_LINES} lines, split by job: {over}"

