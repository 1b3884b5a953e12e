"""The CDDL of docs/tokens.md, checked mechanically (issue 19): every ```cddl block of the page
is compiled with pycddl (the Rust `cddl` crate, RFC 8610), and every token of the accepted
conformance vectors validates against it; claims the verifier refuses for a reason CDDL can
express are refused by it too.

pycddl 0.6 mis-validates `.cbor` inside a tagged array (it reports the wrong array index), so
the envelopes of §3 are compiled but each payload is validated against its own rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cbor2
import pytest

from comptoir.tokens.verify import decode_qr

pycddl = pytest.importorskip("pycddl")

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "tokens.md"
VECTORS = ROOT / "conformance" / "tokens"
RULES = ("presentation", "credential", "certificate", "trust_list", "status_list_cwt")


def cddl_source() -> str:
    blocks = re.findall(r"```cddl\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4, "docs/tokens.md lost its CDDL blocks"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def schemas():
    source = cddl_source()
    return {rule: pycddl.Schema(f"root = {rule}\n{source}") for rule in RULES}


def parts(data: bytes) -> list:
    obj = cbor2.loads(data)
    assert isinstance(obj, cbor2.CBORTag) and obj.tag == 18
    return list(obj.value)


def objects(step: dict):
    """(rule, CBOR bytes) of every token a step carries."""
    op = step["op"]
    if op in ("verify_qr", "verify_nfc"):
        data = decode_qr(step["qr"]) if op == "verify_qr" else bytes.fromhex(step["presentation"])
        payload = parts(data)[2]
        yield "presentation", payload
        yield "credential", parts(cbor2.loads(payload)[-2])[2]
    elif op == "load_trust_list":
        envelope = parts(bytes.fromhex(step["data"]))
        yield "trust_list", envelope[2]
        yield "certificate", parts(cbor2.loads(envelope[0])[-65537])[2]
        for entry in cbor2.loads(envelope[2])[-4]:
            yield "certificate", parts(entry)[2]
    elif op == "load_status_list":
        yield "status_list_cwt", parts(bytes.fromhex(step["data"]))[2]


def accepted_steps():
    for path in sorted(VECTORS.glob("*.json")):
        for step in json.loads(path.read_text(encoding="utf-8"))["steps"]:
            want = step["expect"]
            if want == "loaded" or (isinstance(want, dict) and want["verdict"] == "accepted"):
                yield path.stem, step


def test_every_accepted_token_matches_the_cddl(schemas):
    checked = set()
    for name, step in accepted_steps():
        for rule, data in objects(step):
            try:
                schemas[rule].validate_cbor(data)
            except Exception as exc:  # pycddl raises ValidationError
                pytest.fail(f"{name} {step['op']} {rule}: {str(exc)[:300]}")
            checked.add(rule)
    assert checked == set(RULES)


def test_the_cddl_refuses_what_it_can_express(schemas):
    """refuse-claims-malformed: the unknown claim, true for an integer, the empty -6, the
    65-byte name, tiers payant 10 and generation 2^32+1 break the CDDL; the escape sequence,
    the no-break space, the line separator and the future birth date are prose rules (§4)."""
    doc = json.loads((VECTORS / "refuse-claims-malformed.json").read_text(encoding="utf-8"))
    verdicts = []
    for step in doc["steps"]:
        if step["op"] != "verify_qr":
            continue
        rule, data = list(objects(step))[-1] if step is not doc["steps"][-1] else (
            "presentation", parts(decode_qr(step["qr"]))[2])
        try:
            schemas[rule].validate_cbor(data)
            verdicts.append(True)
        except Exception:
            verdicts.append(False)
    assert verdicts == [False, False, False, False, True, True, True, True, False, False,
                        False]
