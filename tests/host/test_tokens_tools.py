"""Test-identity generator, test PKI and wallet (library and command line), QR size budget."""

from __future__ import annotations

import pytest
import segno
from cryptography.hazmat.primitives import serialization
from tokens_fixtures import NOW, PEPPER, TODAY, World

from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.nir import parse_nir
from comptoir.tokens.reasons import Reason
from comptoir.tokens.replay import VerifierState
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import TrustStore
from comptoir.tokens.verify import Verifier, decode_qr
from comptoir_tools.credentials import pki as pki_cli
from comptoir_tools.credentials import wallet as wallet_cli
from comptoir_tools.credentials.identities import FAMILY_NAMES, GIVEN_NAMES, NIR_KINDS, family
from comptoir_tools.credentials.wallet import Wallet


def test_families_are_deterministic():
    assert family(5, today=TODAY) == family(5, today=TODAY)
    assert family(5, today=TODAY) != family(6, today=TODAY)


@pytest.mark.parametrize("kind", NIR_KINDS)
def test_generated_nirs_are_valid_and_in_unassigned_ranges(kind):
    for seed in range(40):
        fam = family(seed, nir_kind=kind, today=TODAY)
        info = parse_nir(fam.insured.nir)
        if kind == "overseas":
            assert info.department.startswith("97") and int(info.place) >= 90
        else:
            assert int(info.place) >= 990  # commune, or country code when born abroad
        assert info.born_abroad == (kind == "abroad")
        assert info.pseudo_month == (kind == "pseudo_month")
        assert (info.sex in (7, 8)) == (kind == "temporary")
        if kind == "corsica":
            assert info.department in ("2A", "2B")


def test_families_use_only_fictitious_names_and_sane_beneficiaries():
    for seed in range(60):
        fam = family(seed, beneficiaries=seed % 6, today=TODAY)
        people = [fam.insured, *fam.beneficiaries]
        assert all(p.family_name in FAMILY_NAMES for p in people)
        assert all(p.given_names in GIVEN_NAMES for p in people)
        assert [b.rank for b in fam.beneficiaries] == list(range(1, len(fam.beneficiaries) + 1))
        ids = [(b.birth_date.to_int(), b.birth_rank) for b in fam.beneficiaries]
        assert len(set(ids)) == len(ids)
        assert all(b.insured_nir == fam.insured.nir for b in fam.beneficiaries)
        assert all(str(b.birth_date) <= TODAY.isoformat() for b in fam.beneficiaries)


def test_activation_on_a_new_phone(tmp_path):
    world = World(tmp_path)
    fam = world.family()
    first, key1 = world.issuer.activate(fam, now=NOW)
    second, key2 = world.issuer.activate(fam, now=NOW + 1)
    assert key1.private_numbers() != key2.private_numbers()
    world.publish_status()
    r1 = world.qr(Wallet(first, key1).present_qr(now=NOW))
    r2 = world.qr(Wallet(second, key2).present_qr(now=NOW))
    assert not r1.ok and r1.reason is Reason.CREDENTIAL_REVOKED
    assert r2.ok and r2.credential.activation_generation == 2


def test_wallet_counter_only_goes_up(tmp_path):
    world = World(tmp_path)
    wallet = world.wallet()
    counters = []
    for i in range(5):
        text = wallet.present_qr(now=NOW + i)
        counters.append(world.qr(text, now=NOW + i).counter)
    assert counters == [1, 2, 3, 4, 5]
    wallet.save(tmp_path / "w.json")
    assert Wallet.load(tmp_path / "w.json").counter == 5


def qr_versions(text: str) -> dict[str, int]:
    return {
        e: segno.make(text, error=e, mode="alphanumeric", boost_error=False).version for e in "lmq"
    }


@pytest.mark.parametrize(("beneficiaries", "max_m"), [(1, 15), (5, 18)])
def test_qr_size_budget(tmp_path, beneficiaries, max_m):
    """Measured in docs/tokens.md; this keeps the format from growing unnoticed."""
    world = World(tmp_path)
    worst = 0
    for seed in range(10):
        fam = world.family(seed=seed, beneficiaries=beneficiaries, amc=True)
        text = world.wallet(fam).present_qr(now=NOW)
        assert text.startswith("CV1:")
        worst = max(worst, qr_versions(text)["m"])
    assert worst <= max_m


def test_command_line_end_to_end(tmp_path, capsys):
    d = tmp_path / "pki"
    now = ["--now", str(NOW)]
    assert pki_cli.main([*now, "init", str(d), "--seed", "3"]) == 0
    assert (
        pki_cli.main(
            [
                *now,
                "issue",
                str(d),
                "--family-seed",
                "9",
                "--beneficiaries",
                "2",
                "--wallet",
                str(tmp_path / "w.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    nir = family(9, beneficiaries=2, today=TODAY).insured.nir
    assert nir not in out  # only the masked form is printed

    def verifier() -> Verifier:
        anchor = serialization.load_pem_public_key((d / "anchor.pem").read_bytes())
        trust = TrustStore([anchor])
        trust.load((d / "trust-list.cbor").read_bytes(), NOW)
        status = StatusLists(trust)
        status.load((d / "status-1.cbor").read_bytes(), NOW)
        state = VerifierState(tmp_path / f"s{len(list(tmp_path.iterdir()))}.db", pepper=PEPPER)
        return Verifier(trust, status, state, ChallengeRegistry())

    assert (
        wallet_cli.main(
            [*now, "present", str(tmp_path / "w.json"), "--png", str(tmp_path / "qr.png")]
        )
        == 0
    )
    text = capsys.readouterr().out.strip()
    assert (tmp_path / "qr.png").stat().st_size > 0
    assert verifier().verify_qr(text, now=NOW).ok

    v = verifier()
    challenge = v.challenges.issue("b", now=NOW)
    assert (
        wallet_cli.main([*now, "present", str(tmp_path / "w.json"), "--challenge", challenge.hex()])
        == 0
    )
    data = bytes.fromhex(capsys.readouterr().out.strip())
    result = v.verify_nfc(data, "b", now=NOW)
    assert result.ok and result.counter == 2

    # Revoke index 0 (the only credential) and republish: refused.
    assert pki_cli.main([*now, "status-list", str(d), "--revoke", "0"]) == 0
    assert pki_cli.main([*now, "trust-list", str(d)]) == 0
    capsys.readouterr()
    assert wallet_cli.main([*now, "present", str(tmp_path / "w.json")]) == 0
    text = capsys.readouterr().out.strip()
    result = verifier().verify_qr(text, now=NOW)
    assert result.reason is Reason.CREDENTIAL_REVOKED
    assert len(decode_qr(text)) > 0


def test_status_list_bits_are_least_significant_first():
    packed = pki_cli.pack_statuses([1, 0, 2, 3, 0, 1], bits=2)
    assert packed == bytes((0b11_10_00_01, 0b00_00_01_00))
