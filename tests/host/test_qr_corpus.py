"""Decode corpus: simulated camera frames of real presentations (seeded, generated here),
decoded by the host's decoder. Goal: >= 99 % of frames at the realistic levels (0-2) at VGA.

QVGA is measured, not held to that goal: a presentation is a version 13-15 code (69-77
modules at ECC M), 1.5-3 pixels a module at QVGA; the ideal and good levels read, the
typical level mostly does not (numbers in docs/qr.md and `comptoir_tools.bench.qr`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tokens_fixtures import NOW, World

from comptoir.qr.decode import decode_frame
from comptoir_tools.simulators.camera_sim import REALISTIC_LEVELS, CameraSim


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    world = World(Path(tmp_path_factory.mktemp("corpus")))
    out = []
    for seed, n in ((7, 0), (8, 1), (9, 2), (10, 3)):
        wallet = world.wallet(world.family(seed, beneficiaries=n))
        out.append(wallet.present_qr(now=NOW))
    return out


def rate(texts: list[str], resolution: str, fmt: str, level: int, n: int, seed: int) -> float:
    cam = CameraSim(seed, resolution=resolution, fmt=fmt)
    ok = 0
    for i in range(n):
        text = texts[i % len(texts)]
        frame = cam.frame(text, level)
        ok += text.encode() in decode_frame(frame.kind, frame.payload())
    return ok / n


def test_vga_jpeg_realistic_levels_reach_99_percent(texts: list[str]) -> None:
    rates = {lv: rate(texts, "VGA", "jpeg", lv, 50, seed=11) for lv in REALISTIC_LEVELS}
    overall = sum(rates.values()) / len(rates)
    print("VGA JPEG success by level:", rates)
    assert overall >= 0.99, rates


def test_vga_gray_ideal_and_typical(texts: list[str]) -> None:
    assert rate(texts, "VGA", "gray", 0, 10, seed=12) == 1.0
    # Raw gray has no JPEG smoothing of the sensor noise: a little below JPEG (docs/qr.md).
    assert rate(texts, "VGA", "gray", 2, 20, seed=12) >= 0.85


def test_qvga_reads_only_good_presentations(texts: list[str]) -> None:
    good = rate(texts, "QVGA", "jpeg", 1, 20, seed=13)
    typical = rate(texts, "QVGA", "jpeg", 2, 20, seed=13)
    print(f"QVGA JPEG: good {good:.0%}, typical {typical:.0%}")
    assert good >= 0.9
    assert typical < 0.9  # if this starts passing, update docs/qr.md: QVGA got better


def test_hostile_level_is_mostly_unreadable(texts: list[str]) -> None:
    # The scale has teeth: level 4 is beyond what the reader is expected to read.
    assert rate(texts, "VGA", "jpeg", 4, 10, seed=14) < 0.5
