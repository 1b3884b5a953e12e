# The STATUS frame the firmware builds and the names the host reads it with are
# two lists in two files: they must agree field for field.
import app

from comptoir_link import names


def test_status_counters_match_the_host_names():
    assert tuple(app._STATUS_COUNTERS) == names.STATUS_FIELDS[3:10]
    assert names.STATUS_FIELDS[10:12] == ("heap_after_gc", "nfc_taps")
    assert tuple(app._STATUS_COUNTERS_2) == names.STATUS_FIELDS[12:]


def test_status_carries_every_counter_protocol_md_names():
    """§8's counted errors are all in STATUS, so a host can check them (issue 19)."""
    from comptoir_link.link import COUNTER_NAMES

    counted = set(COUNTER_NAMES) - {"rx_frames", "tx_frames"}
    assert counted <= set(names.STATUS_FIELDS), counted - set(names.STATUS_FIELDS)
