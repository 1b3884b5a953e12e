"""The verifier's cache of checked credentials: it saves the issuer signature and the claims
parsing of a credential presented again, and nothing else. Every check that depends on the
presentation, the moment, the trust list or the status list still refuses."""

from __future__ import annotations

import dataclasses

import cbor2
import pytest
from tokens_fixtures import BOARD, NOW, TODAY, World, present_raw, sign1_parts

from comptoir.tokens import claims, cose
from comptoir.tokens.model import BirthDate
from comptoir.tokens.reasons import Reason
from comptoir.tokens.status import INVALID
from comptoir.tokens.verify import Verifier, encode_qr
from comptoir_tools.credentials.pki import new_device_key
from comptoir_tools.credentials.wallet import Wallet


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def refused(result, reason: Reason) -> None:
    assert not result.ok, f"accepted, expected {reason}"
    assert result.reason is reason, f"{result.reason} (detail {result.detail!r}), expected {reason}"


def cached(world: World, wallet: Wallet) -> None:
    """Verify one presentation so that the wallet's credential is in the cache."""
    misses = world.verifier.cache_misses
    assert world.qr(wallet.present_qr(now=NOW)).ok
    assert world.verifier.cache_misses == misses + 1
    assert bytes(wallet.credential) in world.verifier._cache


def test_a_returning_credential_is_served_from_the_cache(world):
    wallet = world.wallet()
    cached(world, wallet)
    for _ in range(3):
        assert world.qr(wallet.present_qr(now=NOW)).ok
    challenge = world.challenges.issue(BOARD, now=NOW)
    assert world.nfc(wallet.present_nfc(challenge, now=NOW)).ok
    assert (world.verifier.cache_hits, world.verifier.cache_misses) == (4, 1)


def test_cached_credential_deactivated_later_is_refused(world):
    wallet = world.wallet()
    cached(world, wallet)
    world.issuer.set_status(len(world.issuer.statuses) - 1, INVALID)
    world.publish_status(NOW + 1)
    hits = world.verifier.cache_hits
    refused(world.qr(wallet.present_qr(now=NOW)), Reason.CREDENTIAL_REVOKED)
    assert world.verifier.cache_hits == hits + 1  # refused although served from the cache


def test_cached_credential_still_needs_the_phone_a_fresh_cti_and_a_higher_counter(world):
    wallet = world.wallet()
    text = wallet.present_qr(now=NOW)
    assert world.qr(text).ok
    refused(world.qr(text), Reason.REPLAYED)
    thief = Wallet(wallet.credential, new_device_key(), counter=wallet.counter)
    refused(world.qr(thief.present_qr(now=NOW)), Reason.PRESENTATION_SIGNATURE_INVALID)
    older = Wallet(wallet.credential, wallet.device_key, counter=0)
    refused(world.qr(older.present_qr(now=NOW)), Reason.COUNTER_NOT_INCREASING)
    assert world.verifier.cache_hits == 3


def test_the_cache_never_serves_different_bytes(world):
    """A credential one bit away from a cached one is checked from scratch (and refused)."""
    wallet = world.wallet()
    cached(world, wallet)
    original = bytes(wallet.credential)
    for pos in (len(original) - 1, len(original) // 2, 20):
        altered = bytearray(original)
        altered[pos] ^= 0x01
        payload = claims.encode_presentation(
            bytes(altered), NOW, b"\x07" * 6 + pos.to_bytes(2, "big"), 100 + pos, None
        )
        result = world.qr(encode_qr(present_raw(wallet, cbor2.dumps(payload))))
        assert not result.ok and result.reason is not Reason.INTERNAL_ERROR
        assert bytes(altered) not in world.verifier._cache
    assert world.verifier.cache_hits == 0


def test_the_issuer_signature_of_a_cached_credential_is_not_transferable(world):
    """Same claims, another signature (an attacker's key under the issuer's kid): a miss."""
    wallet = world.wallet()
    cached(world, wallet)
    parts = sign1_parts(wallet.credential)
    forged = cose.sign(new_device_key(), {1: -7, 4: world.issuer.kid}, parts[2])
    assert forged != wallet.credential
    refused(
        world.qr(Wallet(forged, wallet.device_key, counter=99).present_qr(now=NOW)),
        Reason.CREDENTIAL_SIGNATURE_INVALID,
    )


def test_a_new_trust_list_invalidates_the_cache(world):
    wallet = world.wallet()
    cached(world, wallet)
    other = world.pki.new_issuer("OTHER CPAM")
    world.trust.load(world.pki.trust_list(now=NOW, entries=[other.certificate]), NOW)
    refused(world.qr(wallet.present_qr(now=NOW)), Reason.ISSUER_UNKNOWN)
    # Back on a new list: checked again, then cached again.
    world.trust.load(world.pki.trust_list(now=NOW), NOW)
    misses = world.verifier.cache_misses
    assert world.qr(wallet.present_qr(now=NOW)).ok
    assert world.verifier.cache_misses == misses + 1


def test_trust_list_expiry_and_credential_expiry_are_checked_on_a_hit(world):
    wallet = world.custom_wallet(expires_at=NOW + 100)
    cached(world, wallet)
    late = NOW + 1000
    refused(world.qr(wallet.present_qr(now=late), now=late), Reason.CREDENTIAL_EXPIRED)
    wallet = world.wallet()
    cached(world, wallet)
    later = NOW + 5 * 86400  # trust list: 1 day + 3 days of grace
    refused(world.qr(wallet.present_qr(now=later), now=later), Reason.TRUST_LIST_EXPIRED)


def test_a_day_going_back_is_checked_again(world):
    """A beneficiary born today is fine today; if the clock goes back a day, the cached check
    ("birth date not in the future") is not reused."""
    device = new_device_key()
    cred = world.issuer.credential(world.family(), device.public_key(), now=NOW - 3 * 86400)
    born_today = BirthDate(TODAY.year, TODAY.month, TODAY.day)
    first = dataclasses.replace(cred.beneficiaries[0], birth_date=born_today)
    wallet = world.custom_wallet(cred, device=device, beneficiaries=(first,))
    cached(world, wallet)
    yesterday = NOW - 86400
    refused(
        world.qr(wallet.present_qr(now=yesterday), now=yesterday),
        Reason.BENEFICIARIES_INCONSISTENT,
    )


def test_the_cache_is_bounded_and_can_be_off(world):
    verifier = Verifier(
        world.trust, world.status, world.state, world.challenges, credential_cache=2
    )
    wallets = [world.wallet(world.family(seed=30 + i)) for i in range(3)]
    for wallet in wallets:
        assert verifier.verify_qr(wallet.present_qr(now=NOW), now=NOW).ok
    assert len(verifier._cache) == 2 and bytes(wallets[0].credential) not in verifier._cache
    assert verifier.verify_qr(wallets[0].present_qr(now=NOW), now=NOW).ok  # checked again
    assert verifier.cache_misses == 4

    off = Verifier(world.trust, world.status, world.state, world.challenges, credential_cache=0)
    for _ in range(2):
        assert off.verify_qr(wallets[1].present_qr(now=NOW), now=NOW).ok
    assert (off.cache_hits, off.cache_misses, len(off._cache)) == (0, 2, 0)


def test_refused_credentials_are_not_cached(world):
    wallet = world.custom_wallet(expires_at=world.pki.not_after + 1)
    refused(world.qr(wallet.present_qr(now=NOW)), Reason.ISSUER_CERT_VALIDITY)
    assert not world.verifier._cache
