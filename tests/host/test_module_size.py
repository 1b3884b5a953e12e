"""No host module over MAX_LINES lines (issue 16): a module that grows past it does more than
one job and is split by job, as screen/server.py and tokens/claims.py were."""

from __future__ import annotations

from pathlib import Path

HOST = Path(__file__).resolve().parents[2] / "host"
MAX_LINES = 450
# Over the cap, still to split; each may not grow past its ceiling meanwhile. Both are being
# extended for the PostgreSQL backend (issue 17) by another engineer: split them with that work.
STILL_TO_SPLIT = {
    "comptoir/transactions/store.py": 500,
    "comptoir/rights/cache.py": 480,
}


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_host_module_is_over_the_cap() -> None:
    over = {}
    for path in sorted(HOST.rglob("*.py")):
        name = path.relative_to(HOST).as_posix()
        n = lines(path)
        if n > STILL_TO_SPLIT.get(name, MAX_LINES):
            over[name] = n
    assert not over, f"over {MAX_LINES} lines, split by job: {over}"


def test_the_list_of_modules_to_split_names_real_modules() -> None:
    for name in STILL_TO_SPLIT:
        assert (HOST / name).is_file(), name
