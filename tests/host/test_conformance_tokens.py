"""The token conformance vectors (conformance/tokens/, docs/conformance.md): our verifier passes
every one, they are what the generator writes today, and every refusal reason has one."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from comptoir.tokens.reasons import Reason
from comptoir_tools.conformance import tokens as conformance

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "conformance" / "tokens"
FILES = sorted(VECTORS.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_our_verifier_passes_the_vector(path):
    assert conformance.run_token_vector(load(path)) == []


def test_the_committed_vectors_are_what_the_generator_writes():
    """`comptoir conformance generate` is the only author: regenerate after a format change."""
    fresh = conformance.token_vectors()
    assert sorted(fresh) == [p.stem for p in FILES]
    for name, doc in fresh.items():
        assert conformance.dump(doc) == (VECTORS / f"{name}.json").read_text(encoding="utf-8"), (
            f"{name}: run `comptoir conformance generate --out conformance`")


def expected_reasons() -> set[str]:
    found = set()
    for path in FILES:
        for step in load(path)["steps"]:
            want = step["expect"]
            if isinstance(want, dict):
                found.add(want.get("reason", want["verdict"]))
            else:
                found.add(want)
    return found


def test_every_refusal_reason_has_a_vector():
    """A reason added to the code fails here until a vector shows it."""
    missing = {r.value for r in Reason} - expected_reasons() - {
        r.value for r in conformance.UNREACHABLE}
    assert not missing, f"no conformance vector refuses with {sorted(missing)}"


def test_a_vector_with_a_wrong_expectation_fails():
    """The runner really compares: flip one expectation, it reports the step."""
    doc = load(VECTORS / "refuse-replayed.json")
    doc["steps"][-1]["expect"] = {"verdict": "refused", "reason": "clock_skew"}
    problems = conformance.run_token_vector(doc)
    assert len(problems) == 1 and "replayed" in problems[0]
    doc = load(VECTORS / "accept-nfc.json")
    step = next(s for s in doc["steps"] if s["op"] == "verify_nfc")
    step["apdus"][-1][1] = "00" + step["apdus"][-1][1]
    assert conformance.run_token_vector(doc)


def test_nfc_transcripts_follow_nfc_md():
    """SELECT by AID answered 01 90 00, PRESENT with the 16-byte challenge and Le F0, pages of at
    most 240 bytes with 61 xx, GET RESPONSE for xx (or F0), the last page 90 00."""
    seen = 0
    for path in FILES:
        for step in load(path)["steps"]:
            if "apdus" not in step:
                continue
            seen += 1
            apdus = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in step["apdus"]]
            assert apdus[0] == (bytes.fromhex("00a404000af0434f4d50544f495201" + "00"),
                                b"\x01\x90\x00")
            assert apdus[1][0][:5] == b"\x80\x50\x00\x00\x10" and apdus[1][0][-1] == 0xF0
            for (_, answer), (nxt, _) in itertools.pairwise(apdus[1:]):
                assert answer[-2] == 0x61 and len(answer) - 2 <= 240
                assert nxt[:4] == b"\x00\xc0\x00\x00"
                assert nxt[4] == (answer[-1] if 0 < answer[-1] <= 240 else 240)
            assert apdus[-1][1][-2:] == b"\x90\x00"
    assert seen >= 5
