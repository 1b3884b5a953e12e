"""`make bench`'s NFC section at a tiny size, so that it cannot rot: it once waited forever for a
verdict that extended the previous one's display (OUT lines say changes only)."""

from __future__ import annotations

from comptoir_tools.bench import bench


def test_nfc_taps_section_measures_back_to_back_taps() -> None:
    r = bench.nfc_taps(taps=2)  # 4 taps of one phone, 0.5 s apart once each display ends
    assert r["taps"] == 2
    # Nothing beats the line time of the bytes carried plus the phone's modelled time.
    assert r["ratio_p50"] > 1.0 and r["board_ratio_p50"] > 1.0
    assert r["board_p50_ms"] >= r["p50_ms"]  # the board shows the verdict after the host has it
