"""The verifier's replay and activation state, the same tests on both backends: the journal on
one PC and PostgreSQL shared by several counters (issue 17) — then what only a shared state
can show: a QR accepted at one counter is refused at every other, also at the same instant,
and a counter whose database is away answers `error`, never a second accept."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)
from tokens_fixtures import NOW, PEPPER, World

from comptoir.storage.postgres import open_pool
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.reasons import Reason
from comptoir.tokens.replay import VerifierState, replay_key
from comptoir.tokens.replay_pg import PgVerifierState
from comptoir.tokens.state import ReplayState
from comptoir.tokens.verify import Verifier
from comptoir.verdicts import verdict_for
from comptoir_link import frames as F

NIR = "185057599012304"

OpenState = Callable[[], ReplayState]


@pytest.fixture(params=["journal", "postgresql"])
def open_state(request, tmp_path) -> Iterator[OpenState]:
    """Opens the state as a new daemon would (the previous one closed): the same journal file,
    or a new pool on the same database."""
    opened: list[tuple[ReplayState, object]] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None

    def open_() -> ReplayState:
        for state, _ in opened:
            state.close()
        if url is None:
            state: ReplayState = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
            opened.append((state, None))
            return state
        pool = open_pool(url)
        state = PgVerifierState(pool, pepper=PEPPER)
        opened.append((state, pool))
        return state

    yield open_
    for state, pool in opened:
        state.close()
        if pool is not None:
            pool.close()  # type: ignore[attr-defined]


def commit(state, *, now=NOW, cred=b"C" * 8, counter=1, gen=1, replay=None, nir=NIR):
    return state.commit(now=now, credential_id=cred, credential_expires=now + 1000,
                        counter=counter, nir=nir, generation=gen, replay=replay)


def test_a_replay_is_refused_until_its_key_expires(open_state):
    state = open_state()
    key = replay_key(b"C" * 8, b"P" * 8)
    assert commit(state, replay=(key, NOW + 100)) is None
    assert commit(state, counter=2, replay=(key, NOW + 100)) is Reason.REPLAYED
    assert commit(state, now=NOW + 101, counter=3, replay=(key, NOW + 300)) is None


def test_replays_are_refused_after_a_restart_and_a_purge(open_state):
    state = open_state()
    older, latest = replay_key(b"C" * 8, b"P" * 8), replay_key(b"C" * 8, b"Q" * 8)
    assert commit(state, counter=1, replay=(older, NOW + 100)) is None
    assert commit(state, counter=2, replay=(latest, NOW + 100)) is None
    state = open_state()
    assert commit(state, counter=2, replay=(latest, NOW + 100)) is Reason.REPLAYED
    assert commit(state, counter=1, replay=(older, NOW + 100)) is Reason.REPLAYED
    state.purge(NOW)
    state = open_state()
    assert commit(state, counter=2, replay=(latest, NOW + 100)) is Reason.REPLAYED
    # The journal keeps the last key per credential only: an older one is under the counter.
    assert commit(state, counter=1, replay=(older, NOW + 100)) in (
        Reason.REPLAYED, Reason.COUNTER_NOT_INCREASING)
    assert commit(state, counter=3, replay=(replay_key(b"C" * 8, b"R" * 8), NOW + 100)) is None


def test_a_refused_presentation_records_nothing(open_state):
    state = open_state()
    key = replay_key(b"C" * 8, b"P" * 8)
    assert commit(state, counter=5) is None
    assert commit(state, counter=5, replay=(key, NOW + 100)) is Reason.COUNTER_NOT_INCREASING
    assert commit(state, counter=6, replay=(key, NOW + 100)) is None  # the key rolled back
    assert commit(state, cred=b"D" * 8, gen=0) is Reason.ACTIVATION_SUPERSEDED


def test_the_activation_generation_outlives_a_restart(open_state):
    state = open_state()
    assert commit(state, gen=3) is None
    state = open_state()
    assert state.highest_generation(NIR) == 3
    assert commit(state, cred=b"D" * 8, gen=2) is Reason.ACTIVATION_SUPERSEDED
    assert commit(state, cred=b"D" * 8, gen=4) is None
    assert state.highest_generation(NIR) == 4


def test_one_qr_verified_by_eight_threads_at_once_is_accepted_once(open_state, tmp_path):
    world = World(tmp_path / "world")
    verifier = Verifier(world.trust, world.status, open_state(), ChallengeRegistry(),
                        world.policy)
    text = world.wallet().present_qr(now=NOW)
    results = _at_once([verifier] * 8, text)
    assert sum(r.ok for r in results) == 1
    assert {r.reason for r in results if not r.ok} == {Reason.REPLAYED}


# --- PostgreSQL only: several counters on one database ------------------------------------------


def _counter(world: World, url: str) -> tuple[Verifier, object]:
    """What one counter's daemon holds: its own pool, state, challenges and verifier."""
    pool = open_pool(url, timeout=0.5)  # a counter gives up waiting for its database sooner
    state = PgVerifierState(pool, pepper=PEPPER)
    return Verifier(world.trust, world.status, state, ChallengeRegistry(), world.policy), pool


def _at_once(verifiers: list[Verifier], text: str) -> list:
    results: list = []
    barrier = threading.Barrier(len(verifiers))

    def run(v: Verifier) -> None:
        barrier.wait()
        results.append(v.verify_qr(text, now=NOW))

    threads = [threading.Thread(target=run, args=(v,)) for v in verifiers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _when_back(counter: Verifier, text: str, within: float = 15.0):
    """The verdict once the counter reaches its database again (errors meanwhile)."""
    deadline = time.monotonic() + within
    while True:
        result = counter.verify_qr(text, now=NOW + 2)
        if result.ok or result.reason is not Reason.STATE_UNAVAILABLE:
            return result
        assert time.monotonic() < deadline, "the counter did not reconnect by itself"
        time.sleep(0.1)


@pytest.fixture
def counters(tmp_path, pg_url) -> Iterator[tuple[World, list[Verifier]]]:  # noqa: F811
    world = World(tmp_path / "world")
    made = [_counter(world, pg_url) for _ in range(3)]
    yield world, [v for v, _ in made]
    for _, pool in made:
        pool.close()  # type: ignore[attr-defined]


def test_a_qr_accepted_at_one_counter_is_refused_at_the_others(counters):
    world, (one, two, three) = counters
    text = world.wallet().present_qr(now=NOW)
    assert one.verify_qr(text, now=NOW).ok
    for other in (two, three, one):
        refused = other.verify_qr(text, now=NOW)
        assert not refused.ok and refused.reason is Reason.REPLAYED
    # A new presentation of the same phone (next counter value) is accepted anywhere.
    fresh = world.wallet().present_qr(now=NOW + 1)
    assert two.verify_qr(fresh, now=NOW + 1).ok


def test_one_qr_at_three_counters_at_the_same_instant_is_accepted_once(counters):
    world, verifiers = counters
    for round_ in range(5):
        text = world.wallet().present_qr(now=NOW + round_)
        results = _at_once(verifiers * 3, text)  # 9 threads, 3 daemons' pools
        assert sum(r.ok for r in results) == 1, round_
        assert {r.reason for r in results if not r.ok} == {Reason.REPLAYED}


def test_the_database_holds_no_nir(pg_url, counters):  # noqa: F811
    world, (one, *_) = counters
    fam = world.family()
    assert one.verify_qr(world.wallet(fam).present_qr(now=NOW), now=NOW).ok
    nir = fam.insured.nir
    with psycopg.connect(pg_url) as db:
        dump = b"".join(bytes(v) for table in ("verifier_activations", "verifier_presentations",
                                              "verifier_credentials")
                        for row in db.execute(f"SELECT * FROM {table}")
                        for v in row if isinstance(v, bytes | memoryview))
    assert nir.encode() not in dump and nir[:13].encode() not in dump


def test_a_counter_whose_database_is_away_answers_error_and_never_accepts_twice(
        counters, pg_server):  # noqa: F811
    world, (one, two, _) = counters
    before = world.wallet().present_qr(now=NOW)
    assert one.verify_qr(before, now=NOW).ok  # acknowledged before the server goes away
    during = world.wallet(world.family(seed=8)).present_qr(now=NOW + 1)  # another family
    pg_server.stop()
    try:
        for counter in (one, two):
            for text in (before, during):
                result = counter.verify_qr(text, now=NOW + 1)
                assert not result.ok and result.reason is Reason.STATE_UNAVAILABLE
                verdict, _code, shown = verdict_for(result)
                assert verdict == F.V_ERROR and "database unreachable" in shown
    finally:
        pg_server.start()
    # Back: each counter reconnects by itself (within seconds: its pool retries with a
    # backoff); what was accepted is still refused, what was refused for want of a database is
    # accepted now, once.
    refused = _when_back(two, before)
    assert not refused.ok and refused.reason is Reason.REPLAYED
    assert _when_back(one, during).ok
    again = _when_back(two, during)
    assert not again.ok and again.reason is Reason.REPLAYED


# --- the daemon's configuration -----------------------------------------------------------------


def test_two_daemons_configured_with_storage_url_share_one_verifier_state(tmp_path, pg_url):  # noqa: F811
    from run_fixtures import test_trust

    from comptoir import config, presentations

    trust = test_trust(tmp_path)
    password = tmp_path / "pg-password"
    password.write_text("unused-with-trust-auth\n")
    password.chmod(0o600)
    cfg = config.from_dict({"storage": {"url": pg_url, "password_file": str(password)}})
    pepper = os.urandom(32)
    states = []
    for pc in ("pc1", "pc2"):  # the installer copies the pepper file to every counter PC
        (tmp_path / pc / "tokens").mkdir(parents=True)
        (tmp_path / pc / "tokens" / "pepper").write_bytes(pepper)
        (tmp_path / pc / "tokens" / "pepper").chmod(0o600)
        verifier, _ = presentations.load_verifier(trust, tmp_path / pc / "tokens", cfg.storage)
        assert isinstance(verifier.state, PgVerifierState)
        assert not (tmp_path / pc / "tokens" / "verifier.journal").exists()
        states.append(verifier.state)
    key = replay_key(b"C" * 8, b"P" * 8)
    assert commit(states[0], replay=(key, NOW + 100)) is None
    assert commit(states[1], counter=2, replay=(key, NOW + 100)) is Reason.REPLAYED
    for state in states:
        state.close()


@pytest.mark.parametrize("url", ["postgresql://comptoir:secret@db/pharma",
                                 "postgresql://comptoir@db/pharma?password=secret"])
def test_a_password_in_the_toml_is_refused_without_echoing_it(url):
    from comptoir import config

    with pytest.raises(config.ConfigError) as e:
        config.from_dict({"storage": {"url": url}})
    assert "secret" not in str(e.value) and str(e.value).startswith("storage.url:")


def test_a_daemon_started_while_the_server_is_off_says_so(pg_server, pg_url):  # noqa: F811
    from comptoir.storage import StorageError
    from comptoir.tokens.replay_pg import open_shared_state

    pg_server.stop()
    try:
        with pytest.raises(StorageError, match="shared database is unreachable"):
            open_shared_state(pg_url, None, pepper=PEPPER)
    finally:
        pg_server.start()
    open_shared_state(pg_url, None, pepper=PEPPER).close()


def test_a_password_file_others_can_read_is_refused(tmp_path):
    from comptoir.storage import KeyFileError
    from comptoir.storage.postgres import read_password

    path = tmp_path / "pg-password"
    path.write_text("s3cret\n")
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="readable by others"):
        read_password(path)
    path.chmod(0o600)
    assert read_password(path) == "s3cret"


def test_three_counters_interleaved_with_a_server_restart_accept_each_qr_once_for_its_person(
        counters, pg_server):  # noqa: F811
    """12 families' phones, 6 QR codes each, every QR shown at two counters (the screenshot
    replayed), families served at once from 12 threads, the server restarted in the middle:
    every verdict is about the family's own insured person, no QR is accepted twice, and a QR
    that never met the restart is accepted exactly once."""
    world, verifiers = counters
    families = [world.family(seed=100 + f) for f in range(12)]
    wallets = [world.wallet(fam) for fam in families]  # published before the threads start
    accepted: dict[str, int] = {}
    errored: set[str] = set()
    wrong: list[str] = []
    lock = threading.Lock()
    halfway = threading.Barrier(len(families) + 1)

    def serve(f: int) -> None:
        for k in range(6):
            if k == 3:
                halfway.wait()
            text = wallets[f].present_qr(now=NOW + k)
            for counter in (verifiers[(f + k) % 3], verifiers[(f + k + 1) % 3]):
                result = counter.verify_qr(text, now=NOW + k)
                deadline = time.monotonic() + 15
                while not result.ok and result.reason is Reason.STATE_UNAVAILABLE:
                    with lock:
                        errored.add(text)
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                    result = counter.verify_qr(text, now=NOW + k)
                with lock:
                    if result.ok:
                        accepted[text] = accepted.get(text, 0) + 1
                        if result.insured.nir != families[f].insured.nir:
                            wrong.append(text)
                    elif result.reason is not Reason.REPLAYED:
                        wrong.append(f"{result.reason}")

    threads = [threading.Thread(target=serve, args=(f,)) for f in range(len(families))]
    for t in threads:
        t.start()
    halfway.wait()
    pg_server.stop("immediate")  # as a power cut of the back-office PC would
    time.sleep(0.3)
    pg_server.start()
    for t in threads:
        t.join()
    assert not wrong, wrong
    assert all(n == 1 for n in accepted.values())  # never twice
    shown = 12 * 6
    assert errored, "the restart was not met by any presentation"
    assert len(accepted) >= shown - len(errored)  # every QR untouched by the restart: once
    print(f"{shown} QR codes, {2 * shown} presentations: {len(accepted)} accepted once, "
          f"{len(errored)} met the restart ({len(errored - set(accepted))} never accepted)")


def test_a_full_server_disk_refuses_and_loses_nothing(pg_server):  # noqa: F811
    """The server's disk full (the state's tables on a small tmpfs: ENOSPC, for real; the
    journal's counterpart is test_tokens_state's EFBIG test): the presentation is refused with
    the `error` verdict's reason, never accepted; nothing half recorded; once there is room
    it is accepted, once, and every presentation accepted before is still refused as a
    replay."""
    from pg_full_disk import small_tablespace

    from comptoir.tokens.reasons import TokenError

    with small_tablespace(pg_server, "256k") as (url, make_room):
        pool = open_pool(url)
        state = PgVerifierState(pool, pepper=PEPPER)

        def present(i: int) -> Reason | None:
            cred = i.to_bytes(8, "big")
            return commit(state, cred=cred, replay=(replay_key(cred, b"P" * 8), NOW + 100))

        accepted = []
        with pytest.raises(TokenError) as refused:
            for i in range(20_000):
                assert present(i) is None
                accepted.append(i)
        assert refused.value.reason is Reason.STATE_UNAVAILABLE and len(accepted) > 10
        make_room()
        assert present(len(accepted)) is None  # the refused one: accepted once, now
        for i in [*accepted, len(accepted)]:
            assert present(i) is Reason.REPLAYED
        pool.close()
