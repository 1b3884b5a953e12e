"""The numbers the specs state are the code's (issue 19): each test reads a sentence or a table
of a doc page and compares it with the constant the code uses."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from comptoir.tokens import challenges, claims, cose, status, trust, verify

ROOT = Path(__file__).resolve().parents[2]


def doc(name: str) -> str:
    return (ROOT / "docs" / name).read_text(encoding="utf-8")


def find(text: str, pattern: str) -> tuple[str, ...]:
    m = re.search(pattern, text, re.S)
    assert m, f"the docs no longer say {pattern!r}"
    return m.groups()


def default(fn, name):
    return inspect.signature(fn).parameters[name].default


# --- tokens.md --------------------------------------------------------------------------------


def _size(text: str) -> int:
    text = text.replace(" ", "")
    units = {"MiB": 1 << 20, "KiB": 1 << 10}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


def test_tokens_cbor_limits_table():
    table = {
        "presentation / credential envelope": [verify.PRESENTATION_LIMITS,
                                               verify.CREDENTIAL_LIMITS],
        "presentation claims": [verify.PRESENTATION_CLAIMS_LIMITS],
        "credential claims": [verify.CREDENTIAL_CLAIMS_LIMITS],
        "protected header": [cose._HEADER_LIMITS],
        "certificate": [trust.CERT_LIMITS, trust._CERT_CLAIMS],
        "trust list": [trust._LIST_CLAIMS],
        "status list": [status._CLAIMS],
    }
    text = doc("tokens.md")
    for row, limits in table.items():
        size, depth, items, per = find(
            text, r"\| " + re.escape(row) + r" \| ([0-9 MiB]+) \| (\d+) \| (\d+) \| (\d+) \|")
        for lim in limits:
            assert (_size(size.replace(" 000", "000")), int(depth), int(items), int(per)) == (
                lim.max_bytes, lim.max_depth, lim.max_items, lim.max_container), row


def test_tokens_sizes_and_times():
    text = doc("tokens.md")
    assert find(text, r"Maximum\s+accepted: (\d+) bytes → (\d+) characters") == (
        str(verify.MAX_PRESENTATION_BYTES), str(verify.MAX_QR_CHARS))
    skew, most = find(text, r"skew `s` \(default (\d+) s, at most (\d+) s\)")
    assert (int(skew), int(most)) == (verify.Policy().clock_skew, verify.MAX_CLOCK_SKEW)
    qr, nfc = find(text, r"max age\s+(\d+) s for QR, (\d+) s for NFC")
    assert (int(qr), int(nfc)) == (verify.Policy().qr_max_age, verify.Policy().nfc_max_age)
    (days,) = find(text, r"keeps using a list up to (\d+) days past its `exp`")
    assert int(days) * 86400 == default(status.StatusLists, "grace")
    (cap,) = find(text, r"capped by the host, (\d+) days")
    assert int(cap) * 86400 == default(trust.TrustStore, "max_grace")
    (mib,) = find(text, r"at\s+most (\d+) MiB \(zlib bombs")
    assert int(mib) << 20 == status.MAX_DECOMPRESSED
    (per_kid,) = find(text, r"\(at most (\d+) per kid")
    assert int(per_kid) == trust.MAX_KEYS_PER_KID
    (entries,) = find(text, r"-4: \[ 0\*(\d+) bstr")
    assert int(entries) == trust.MAX_ENTRIES
    (tl_skew,) = find(text, r"\(skew (\d+) s, the verifier's")
    assert int(tl_skew) == default(trust.TrustStore, "clock_skew") == verify.Policy().clock_skew
    ttl, per_board, boards = find(text, r"TTL (\d+) s,\s+(\d+) outstanding per board, (\d+) boards")
    assert (int(ttl), int(per_board), int(boards)) == (
        default(challenges.ChallengeRegistry, "ttl"),
        default(challenges.ChallengeRegistry, "per_board"),
        default(challenges.ChallengeRegistry, "max_boards"))
    (chal,) = find(text, r"issues a (\d+)-byte challenge")
    assert int(chal) == challenges.CHALLENGE_BYTES


def test_tokens_cddl_bounds_are_the_code_constants():
    text = doc("tokens.md")
    assert f"? -6: [ 1*{claims.MAX_BENEFICIARIES} beneficiary ]" in text
    assert f"periods = [ 0*{claims.MAX_PERIODS} period ]" in text
    assert f"exemptions = [ 0*{claims.MAX_PERIODS} exemption ]" in text
    assert f"name = tstr .size (1..{claims.MAX_NAME})" in text
    codes = " / ".join(str(c) for c in sorted(claims.TIERS_PAYANT_CODES))
    assert f"4: {codes}," in text
    assert f'"{verify.QR_PREFIX}" || base45' in text


def test_conformance_md_counts_the_vectors():
    text = doc("conformance.md")
    for sub in ("tokens", "link"):
        (count,) = find(text, r"`conformance/" + sub + r"/\*\.json` \((\d+)\)")
        assert int(count) == len(list((ROOT / "conformance" / sub).glob("*.json"))), sub
