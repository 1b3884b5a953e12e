"""Named points where the crash test may kill this process (SIGKILL, no cleanup).

COMPTOIR_BILLING_CRASH="export.renamed:3" kills the process the 3rd time it passes
`hit("export.renamed")`. Unset (always, outside the crash test), hit() is one dict lookup.
"""

from __future__ import annotations

import os
import signal

_target: tuple[str, int] | None = None
_spec = os.environ.get("COMPTOIR_BILLING_CRASH", "")
if ":" in _spec:
    _name, _, _count = _spec.rpartition(":")
    _target = (_name, int(_count))
_seen: dict[str, int] = {}

POINTS = (
    "record.inserted",  # sheet row written, transaction not committed
    "record.committed",
    "lot.closed",  # lot row and sheet assignment written, not committed
    "export.tmp_written",  # a batch's temp files fsynced, none renamed
    "export.lot_renamed",  # one more lot of the batch renamed, maybe not the others
    "export.renamed",  # the batch's final files in place, directories fsynced, not committed
    "export.committed",
)


def hit(name: str) -> None:
    if _target is None or _target[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
