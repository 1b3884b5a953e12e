"""Verifier state on disk (replay cache, counters, activation generations) and NFC challenges."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from tokens_fixtures import BOARD, NOW, PEPPER, World

from comptoir.tokens.challenges import CHALLENGE_BYTES, ChallengeRegistry
from comptoir.tokens.reasons import Reason, TokenError
from comptoir.tokens.replay import VerifierState, load_pepper, replay_key

NIR = "185057599012304"


def commit(state, *, now=NOW, cred=b"C" * 8, counter=1, gen=1, replay=None, nir=NIR):
    return state.commit(
        now=now,
        credential_id=cred,
        credential_expires=now + 1000,
        counter=counter,
        nir=nir,
        generation=gen,
        replay=replay,
    )


def test_replay_entry_expires(tmp_path):
    state = VerifierState(tmp_path / "s.db", pepper=PEPPER)
    key = replay_key(b"C" * 8, b"P" * 8)
    assert commit(state, replay=(key, NOW + 100)) is None
    assert commit(state, counter=2, replay=(key, NOW + 100)) is Reason.REPLAYED
    assert commit(state, now=NOW + 101, counter=3, replay=(key, NOW + 300)) is None
    state.purge(NOW + 10_000)
    rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM seen").fetchone()
    assert rows == (0,)


def test_replay_keys_cannot_collide_across_credentials():
    assert replay_key(b"AB", b"C") != replay_key(b"A", b"BC")


def test_refused_commit_records_nothing(tmp_path):
    state = VerifierState(tmp_path / "s.db", pepper=PEPPER)
    key = replay_key(b"C" * 8, b"P" * 8)
    assert commit(state, counter=5) is None
    assert commit(state, counter=5, replay=(key, NOW + 100)) is Reason.COUNTER_NOT_INCREASING
    # The replay key of the refused presentation was rolled back:
    assert commit(state, counter=6, replay=(key, NOW + 100)) is None


def test_activation_generation_is_persisted_and_nir_is_not_stored(tmp_path):
    state = VerifierState(tmp_path / "s.db", pepper=PEPPER)
    assert commit(state, gen=3) is None
    state.close()
    state = VerifierState(tmp_path / "s.db", pepper=PEPPER)
    assert state.highest_generation(NIR) == 3
    assert commit(state, cred=b"D" * 8, gen=2) is Reason.ACTIVATION_SUPERSEDED
    state.close()
    raw = (tmp_path / "s.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("s.db-*")
    )
    assert NIR.encode() not in raw and NIR[:13].encode() not in raw


def test_pepper_file_is_created_private_and_stable(tmp_path):
    path = tmp_path / "pepper"
    first = load_pepper(path)
    assert len(first) == 32 and load_pepper(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


def test_concurrent_verifications_of_one_qr_accept_exactly_once(tmp_path):
    world = World(tmp_path)
    text = world.wallet().present_qr(now=NOW)
    results = []
    barrier = threading.Barrier(8)

    def run():
        barrier.wait()
        results.append(world.qr(text))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.ok for r in results) == 1
    assert {r.reason for r in results if not r.ok} == {Reason.REPLAYED}


# --- challenges ---------------------------------------------------------------------------------


def reason_of(fn, *args):
    with pytest.raises(TokenError) as exc:
        fn(*args)
    return exc.value.reason


def test_challenge_single_use_and_expiry():
    reg = ChallengeRegistry(ttl=30)
    c = reg.issue(BOARD, now=0)
    assert len(c) == CHALLENGE_BYTES
    reg.check(BOARD, c, 10)
    reg.consume(BOARD, c, 10)
    assert reason_of(reg.consume, BOARD, c, 11) is Reason.CHALLENGE_REUSED
    c2 = reg.issue(BOARD, now=100)
    assert reason_of(reg.consume, BOARD, c2, 131) is Reason.CHALLENGE_EXPIRED
    assert reason_of(reg.consume, "other", c2, 101) is Reason.CHALLENGE_UNKNOWN
    assert reason_of(reg.consume, BOARD, b"\x00" * 16, 101) is Reason.CHALLENGE_UNKNOWN


def test_challenges_are_bounded_per_board_and_in_boards():
    reg = ChallengeRegistry(ttl=30, per_board=2, max_boards=3)
    first, second, third = (reg.issue(BOARD, now=0) for _ in range(3))
    assert reason_of(reg.check, BOARD, first, 1) is Reason.CHALLENGE_UNKNOWN
    reg.check(BOARD, second, 1)
    reg.check(BOARD, third, 1)
    others = [reg.issue(f"b{i}", now=0) for i in range(3)]  # BOARD is the least recent
    assert reason_of(reg.check, BOARD, third, 1) is Reason.CHALLENGE_UNKNOWN
    reg.check("b2", others[2], 1)


def test_challenges_are_random():
    reg = ChallengeRegistry()
    assert len({reg.issue(BOARD) for _ in range(50)}) == 50
