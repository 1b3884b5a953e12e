"""`comptoir twin --counters 2` (what `make run COUNTERS=2` runs), as a user starts it: two
counters' daemons and boards on a PostgreSQL server the twin starts itself. Its demonstration
must show what issue 17 promises: a QR accepted at counter 1, its screenshot refused at counter 2
as replayed; every board of the pharmacy under its own id (the shared transaction store records
which board saw a presentation); no full NIR on the terminal; the server gone after exit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

COMPTOIR = Path(sys.executable).parent / "comptoir"
FULL_NIR = re.compile(r"(?<!\d)[12]\d{12}(\d{2})?(?!\d)")


def test_two_counters_refuse_the_screenshot_at_counter_2(tmp_path: Path) -> None:
    run = subprocess.run([str(COMPTOIR), "twin", "--counters", "2", "--duration", "22"],
                         capture_output=True, text=True, timeout=180,
                         env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path),
                              "HOME": str(tmp_path)})
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "on PostgreSQL started by the twin" in out
    ups = re.findall(r"\] (counter\d)/board\d: UP  id ([0-9a-f]+) ", out)
    assert {c for c, _ in ups} == {"counter1", "counter2"} and len(ups) == 4, out
    assert len({board_id for _, board_id in ups}) == 4, ups  # no two boards share an id
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "counter1/board1: QR code → " in line)
    assert "REFUSED" not in lines[first], lines[first]  # accepted at counter 1 ...
    assert any("counter2/board1: QR code → REFUSED (replayed)" in line
               for line in lines[first + 1:]), out  # ... refused at counter 2
    assert not FULL_NIR.search(out + run.stderr)
    # The throw-away server and its folder are gone with the twin.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("comptoir-")], \
        list(tmp_path.iterdir())
