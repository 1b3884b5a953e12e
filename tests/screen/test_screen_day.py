"""The day as the page shows it: lots, exports and every alert the issue names (a board down,
the rights service unreachable, a trust or status list past its expiry, the disk nearly full)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from comptoir import clock
from comptoir.events import BoardStatus
from comptoir.screen import views


class FakeBiller:
    def __init__(self, lots: list[Any] | None = None) -> None:
        self._lots = lots or []

    def lots(self) -> list[Any]:
        return self._lots

    def open_sheets(self) -> dict[str, tuple[int, int | None]]:
        return {"990000127": (3, int(clock.now()) - 60), "990000135": (0, None)}

    def exports(self) -> list[tuple[str, int, str, str, int]]:
        return [("990000127", 1, "b2", "lot-001.b2", int(clock.now()) - 30),
                ("990000127", 0, "b2", "old.b2", int(clock.now()) - 3 * 86400)]


def _day(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"biller": FakeBiller(), "counts": {"dispensed": 2},
                            "boards": {"/dev/b": BoardStatus("/dev/b", "up"),
                                       "/dev/a": BoardStatus("/dev/a", "up")},
                            "timezone": "Europe/Paris", "data_dir": tmp_path}
    args.update(kw)
    return views.day(**args)


def test_a_quiet_day_has_no_alert(tmp_path: Path) -> None:
    d = _day(tmp_path, rights_reachable=lambda: True,
             trust=lambda: {"state": "ok", "lists": [{"kind": "trust", "state": "ok"}]})
    assert d["alerts"] == []
    assert d["open_lots"] == [{"finess": "990000127", "sheets": 3,
                               "since_iso": d["open_lots"][0]["since_iso"]}]
    assert [e["name"] for e in d["exports"]] == ["lot-001.b2"]  # today's only
    assert d["transactions"] == {"dispensed": 2}


def test_every_alert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(
        total=100 * 2**30, used=100 * 2**30 - 100 * 2**20, free=100 * 2**20))
    with clock.use(clock.ManualClock(time.time())):
        d = _day(tmp_path, boards={"/dev/b": BoardStatus("/dev/b", "absent"),
                                   "/dev/a": BoardStatus("/dev/a", "up")},
                 rights_reachable=lambda: False,
                 trust=lambda: {"state": "grace", "lists": [{"kind": "trust", "state": "ok"},
                                                            {"kind": "status",
                                                             "state": "grace"}]})
    codes = [a["code"] for a in d["alerts"]]
    assert codes == ["board_down", "rights_service", "trust_grace", "disk_low"]
    texts = [a["text"] for a in d["alerts"]]
    assert texts[0] == "Comptoir 2 : lecteur débranché"  # named as the page names it
    assert "ADRi" in texts[1] and "opposition" in texts[2] and "100 Mo" in texts[3]
