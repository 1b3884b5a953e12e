# The STATUS frame the firmware builds and the names the host reads it with are
# two lists in two files: they must agree field for field.
import app

from comptoir_link import names


def test_status_counters_match_the_host_names():
    assert tuple(app._STATUS_COUNTERS) == names.STATUS_FIELDS[3:10]
    assert names.STATUS_FIELDS[10:] == ("heap_after_gc", "nfc_taps")
