# The link conformance vectors (conformance/link/*.json) against the real firmware: the
# reader application and its link on a fake board and clock, under CPython (pytest) and on
# the MicroPython unix port (tests/test_firmware_on_micropython.py). docs/conformance.md.
import os

import linkboard


def _directory():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    for d in (here + "/../../conformance/link", "conformance/link"):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        return d, sorted(n for n in names if n.endswith(".json"))
    raise OSError("conformance/link not found (run from the repository root)")


def test_every_link_vector_passes_on_the_firmware():
    d, names = _directory()
    assert len(names) >= 15, names
    failures = []
    for name in names:
        doc = linkboard.load(d + "/" + name)
        problems = linkboard.run_vector(doc)
        doc = None
        if problems:
            failures.append("%s: %s" % (name, problems[0]))
    assert not failures, failures


def test_a_wrong_expectation_is_reported():
    d, names = _directory()
    doc = linkboard.load(d + "/log-to-board.json")
    doc["steps"][-1]["board_sends"][0]["seq"] = 7
    assert linkboard.run_vector(doc)
