"""The numbers and tables docs/protocol.md states are the link code's (issue 19): frame types,
TLV tags, capability bits, STATUS fields, VERDICT reason codes, sizes and timings."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from comptoir import pairing as host_pairing
from comptoir.verdicts import REASON_CODES
from comptoir_link import board_side, names
from comptoir_link import frames as F
from comptoir_link.link import Link

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
if str(ROOT / "firmware") not in sys.path:
    sys.path.insert(0, str(ROOT / "firmware"))


def find(pattern: str) -> tuple[str, ...]:
    m = re.search(pattern, TEXT, re.S)
    assert m, f"protocol.md no longer says {pattern!r}"
    return m.groups()


def test_frame_type_table_is_frames_py():
    rows = re.findall(r"^\| (0x[0-9A-F]{2}) \| ([A-Z_]+) \| ([^|]+) \| (yes|no) \|", TEXT, re.M)
    table = {int(code, 16): (name, seq == "yes") for code, name, _, seq in rows}
    assert table == {t: (n, t >= F.FIRST_SEQUENCED) for t, n in names.NAMES.items()}


def test_tlv_table_is_frames_py():
    table = TEXT[TEXT.index("| tag | name | in | value |"):]
    table = table[: table.index("\n\n")]
    rows = re.findall(r"^\| (0x[0-9A-F]{2}) \| ([A-Z_]+) \| (HELLO|HELLO_ACK|both) \|", table, re.M)
    assert {int(c, 16): n for c, n, _ in rows} == {
        getattr(F, "T_" + n): n for _, n, _ in rows}
    assert len(rows) == len([k for k in dir(F) if k.startswith("T_")])


def test_caps_reject_and_error_codes():
    caps = dict((n, int(v, 16)) for v, n in re.findall(
        r"(0x[0-9a-f]{2}) (NFC|camera|on-board QR decoding|display|buzzer|LED)", TEXT))
    assert caps == {"NFC": F.CAP_NFC, "camera": F.CAP_CAMERA,
                    "on-board QR decoding": F.CAP_QR_DECODE, "display": F.CAP_DISPLAY,
                    "buzzer": F.CAP_BUZZER, "LED": F.CAP_LED}
    assert find(r"1 = protocol version.*?2 = malformed HELLO, 3 = unknown board") == ()
    assert (F.REJECT_VERSION, F.REJECT_MALFORMED, F.REJECT_UNKNOWN_BOARD) == (1, 2, 3)
    assert find(r"ERROR codes: 0x0001 link noise, 0x0002 restarted after a watchdog reset,\s+"
                r"0x0003 a request") == ()
    assert (F.E_LINK_NOISE, F.E_WATCHDOG, F.E_BAD_REQUEST) == (1, 2, 3)


def test_status_fields_are_names_py():
    (fields,) = find(r"\| 0x15 \| STATUS \| board → host \| yes \| u32 LE values: ([a-z_, ]+) \(")
    assert tuple(f.strip() for f in fields.split(",")) == names.STATUS_FIELDS
    import app

    assert names.STATUS_FIELDS[3:10] == app._STATUS_COUNTERS
    assert names.STATUS_FIELDS[12:] == app._STATUS_COUNTERS_2


def test_verdict_reason_table_is_the_host_codes():
    rows = re.findall(r"`([a-z_0-9]+)` \| (\d+)", TEXT)
    assert {r: int(v) for r, v in rows if r in {x.value for x in REASON_CODES}} == {
        r.value: code for r, code in REASON_CODES.items()}
    assert len(REASON_CODES) == len({r for r, _ in rows})


def test_sizes_and_timings():
    assert find(r"link\.max_payload` \((\d+) by default;.*?No build accepts more than (\d+)") == (
        str(F.DEFAULT_MAX_PAYLOAD), str(F.MAX_PAYLOAD_LIMIT))
    import app

    from comptoir_link import link as L

    assert find(r"\(`\"repl\": true`\) announces \*\*(\d+) bytes\*\*") == (
        str(app._REPL_RX_PAYLOAD),)
    assert find(r"every receiver takes a control frame of up to (\d+) bytes") == (
        str(L._CTRL_BODY),)
    slow = Link(lambda b: None, baud=115200, max_payload=4096)
    fast = Link(lambda b: None, baud=921600, max_payload=4096)
    assert find(r"150 ms: (\d+) ms at 115 200 baud, (\d+) ms at 921 600") == (
        str(slow.hello_interval_ms), str(fast.hello_interval_ms))
    assert find(r"payloads that is (\d+) ms; at 921 600,\s+(\d+) ms") == (
        str(slow.rto_ms), str(fast.rto_ms))
    assert find(r"attempt 5 s after the HELLO_REJECT") == ()
    assert board_side._REFUSED_RETRY_MS == 5000
    assert find(r"After (\d+) resends") == (str(slow.max_retries),)
    assert find(r"\(1, 2, 4 or 8; (\d+) by default") == (str(slow.window),)
    assert find(r"1000 ms by default") == () and slow.heartbeat_ms == 1000
    assert slow.link_timeout_ms == max(4 * 1000, 2000) + 2 * (
        (slow._wire_max * 10000 + 115199) // 115200) + 100
    (limit,) = find(r"reads at most \*\*(\d+) bytes\*\*")
    import nfc_task

    assert int(limit) == nfc_task.MAX_PRESENTATION
    (host_limit,) = find(r"total beyond its limit \((\d+) bytes for a presentation")
    assert f"max_object={host_limit}" in (ROOT / "host/comptoir/nfc_service.py").read_text()
    (back,) = find(r"one of the last (\d+) objects the board sent")
    import app

    assert int(back) == app._VERDICT_BACK
    (proof_s,) = find(r"no proof\s+within (\d+) s")
    assert float(proof_s) == host_pairing.PROOF_TIMEOUT_S
