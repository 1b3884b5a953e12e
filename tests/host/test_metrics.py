"""Prometheus text exposition by hand: format, escaping, histogram buckets."""

from __future__ import annotations

from comptoir.events import BoardDown, LinkError
from comptoir.metrics import Metrics
from comptoir.nfc_service import Presentation, TapFailed
from comptoir.tokens.model import Refused
from comptoir.tokens.reasons import Reason


def test_render() -> None:
    now = [100.0]
    m = Metrics(lambda: {"/dev/a": "up", '/dev/"b"': "down"}, clock=lambda: now[0])
    m.on_event(Presentation("/dev/a", "b1", 1, "nfc", Refused(Reason.CREDENTIAL_REVOKED), 99.97))
    m.on_event(Presentation("/dev/a", "b1", 2, "nfc", Refused(Reason.CREDENTIAL_REVOKED), 99.0))
    m.on_event(TapFailed("/dev/a", 3, 1, "rf"))
    m.on_event(LinkError("/dev/a", "crc", "x"))
    m.on_event(BoardDown("/dev/a", "silence"))
    text = m.render()
    assert text.endswith("\n")
    assert ('comptoir_verdicts_total{channel="nfc",verdict="refused",'
            'reason="credential_revoked"} 2') in text
    h = "comptoir_presentation_latency_seconds"
    assert f'{h}_bucket{{channel="nfc",le="0.05"}} 1' in text
    assert f'{h}_bucket{{channel="nfc",le="1.0"}} 2' in text
    assert f'{h}_bucket{{channel="nfc",le="+Inf"}} 2' in text
    assert f'{h}_count{{channel="nfc"}} 2' in text
    assert 'comptoir_tap_failures_total{port="/dev/a",code="1"} 1' in text
    assert 'comptoir_board_events_total{port="/dev/a",event="down"} 1' in text
    assert 'comptoir_board_up{port="/dev/\\"b\\""} 0' in text
    assert "comptoir_boards_up 1" in text
    for line in text.splitlines():  # every sample line: name{labels} value
        if not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            float(value)
            assert name.startswith("comptoir_")
