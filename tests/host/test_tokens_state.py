"""Verifier state on disk (replay cache, counters, activation generations) and NFC challenges."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_fixtures import pg_server  # noqa: F401 (fixture)
from tokens_fixtures import BOARD, NOW, PEPPER, World

from comptoir.tokens.challenges import CHALLENGE_BYTES, ChallengeRegistry
from comptoir.tokens.reasons import Reason, TokenError
from comptoir.tokens.replay import (
    RECORD_SIZE,
    StateCorrupt,
    StateInUse,
    VerifierState,
    import_sqlite_state,
    load_pepper,
    replay_key,
)

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


def journal_records(path):
    return path.stat().st_size // RECORD_SIZE


def test_replay_entry_expires(tmp_path):
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    key = replay_key(b"C" * 8, b"P" * 8)
    assert commit(state, replay=(key, NOW + 100)) is None
    assert commit(state, counter=2, replay=(key, NOW + 100)) is Reason.REPLAYED
    assert commit(state, now=NOW + 101, counter=3, replay=(key, NOW + 300)) is None
    assert journal_records(tmp_path / "s.journal") == 1 + 2 + 1  # header, 2 accepted, 1 gen
    state.purge(NOW + 10_000)  # past the credential's expiry too
    state.close()
    # What is left: the header and the activation generation (kept for ever).
    assert journal_records(tmp_path / "s.journal") == 2


def test_replays_are_refused_after_a_restart(tmp_path):
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    older, latest = replay_key(b"C" * 8, b"P" * 8), replay_key(b"C" * 8, b"Q" * 8)
    assert commit(state, counter=1, replay=(older, NOW + 100)) is None
    assert commit(state, counter=2, replay=(latest, NOW + 100)) is None
    state.close()
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    assert commit(state, counter=2, replay=(latest, NOW + 100)) is Reason.REPLAYED
    assert commit(state, counter=1, replay=(older, NOW + 100)) is Reason.REPLAYED
    state.purge(NOW)  # rewritten: one record per credential left
    state.close()
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    assert commit(state, counter=2, replay=(latest, NOW + 100)) is Reason.REPLAYED
    # Only the last key per credential is kept; an older one is under the last counter.
    assert commit(state, counter=1, replay=(older, NOW + 100)) is Reason.COUNTER_NOT_INCREASING
    assert commit(state, counter=3, replay=(replay_key(b"C" * 8, b"R" * 8), NOW + 100)) is None


def test_one_process_only_uses_a_state_file(tmp_path):
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    with pytest.raises(StateInUse, match="another process"):
        VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    state.close()
    VerifierState(tmp_path / "s.journal", pepper=PEPPER).close()


def test_the_sqlite_state_of_an_older_daemon_is_imported(tmp_path):
    db = sqlite3.connect(tmp_path / "verifier.db")
    db.executescript(
        "CREATE TABLE seen (key BLOB PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE counters (credential BLOB PRIMARY KEY, counter INTEGER NOT NULL,"
        " expires INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE activations (person BLOB PRIMARY KEY, generation INTEGER NOT NULL)"
        " WITHOUT ROWID;"
    )
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    db.execute("INSERT INTO counters VALUES (?, 7, ?)", (b"C" * 8, NOW + 1000))
    db.execute("INSERT INTO counters VALUES (?, 9, ?)", (b"X" * 8, NOW - 1))  # expired
    db.execute("INSERT INTO activations VALUES (?, 4)", (state.person_key(NIR),))
    db.commit()
    db.close()
    # The old file itself is not a journal: refused by name, not read as garbage.
    with pytest.raises(StateCorrupt, match="SQLite"):
        VerifierState(tmp_path / "verifier.db", pepper=PEPPER)
    assert import_sqlite_state(tmp_path / "verifier.db", state, NOW) == 2
    state.close()
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    assert commit(state, counter=7, gen=4) is Reason.COUNTER_NOT_INCREASING
    assert commit(state, counter=8, gen=3) is Reason.ACTIVATION_SUPERSEDED
    assert commit(state, counter=8, gen=4) is None


_FULL_DISK = """
import resource, signal, sys
sys.path[:0] = {paths!r}
from comptoir.tokens.replay import VerifierState
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
state = VerifierState({path!r}, pepper=b"p" * 32)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
def commit(cred):
    return state.commit(now={now}, credential_id=cred.to_bytes(8, "big"),
                        credential_expires={now} + 1000, counter=1, nir="185057599012304",
                        generation=1, replay=(b"K" + cred.to_bytes(8, "big"), {now} + 9))
accepted = 0
try:
    for cred in range(1, 1000):
        assert commit(cred) is None
        accepted = cred
except OSError as e:
    print("refused", accepted + 1, e.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
print("retry", commit(accepted + 1))
state.close()
"""


def test_a_full_disk_refuses_and_loses_nothing(tmp_path):
    """A real write error (the file size limit, EFBIG) on a record: the presentation is
    refused, nothing half-written stays, and it is accepted once the disk has room."""
    path = tmp_path / "s.journal"
    VerifierState(path, pepper=b"p" * 32).close()
    limit = path.stat().st_size + 10 * RECORD_SIZE + RECORD_SIZE // 2
    script = _FULL_DISK.format(paths=sys.path, path=str(path), limit=limit, now=NOW)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split("\n")
    # header, credential 1 and its generation, credentials 2-9 fit; 10 is cut short
    assert out[0] in (f"refused 10 {errno.ENOSPC}", f"refused 10 {errno.EFBIG}")
    assert out[1] == "retry None"
    assert path.stat().st_size % RECORD_SIZE == 0
    state = VerifierState(path, pepper=b"p" * 32)
    for cred in range(1, 11):
        assert commit(state, cred=cred.to_bytes(8, "big"), nir="185057599012304") is (
            Reason.COUNTER_NOT_INCREASING
        )
    assert state.skipped_records == 0


def test_damaged_records_cost_only_themselves(tmp_path, caplog):
    path = tmp_path / "s.journal"
    state = VerifierState(path, pepper=PEPPER)
    for i in range(1, 6):
        assert commit(state, cred=bytes([i]) * 8, counter=10) is None
    state.close()
    data = bytearray(path.read_bytes())
    data[3 * RECORD_SIZE + 20] ^= 0x01  # the record of credential 2 (after header, gen, 1)
    path.write_bytes(bytes(data) + b"\x00" * 17)  # and a partial record at the end
    state = VerifierState(path, pepper=PEPPER)
    assert state.skipped_records == 1
    assert "1 damaged records skipped" in caplog.text
    assert path.stat().st_size % RECORD_SIZE == 0  # the partial record was dropped
    for i in (1, 3, 4, 5):
        assert commit(state, cred=bytes([i]) * 8, counter=10) is Reason.COUNTER_NOT_INCREASING
    assert commit(state, cred=bytes([2]) * 8, counter=10) is None  # its record was lost


@pytest.mark.parametrize("content", [b"", b"garbage" * 40, b"SQLite format 3\x00" + bytes(90)])
def test_a_file_that_is_not_a_journal_is_refused_by_name(tmp_path, content):
    path = tmp_path / "s.journal"
    path.write_bytes(content)
    with pytest.raises(StateCorrupt, match=str(path)):
        VerifierState(path, pepper=PEPPER)
    assert path.read_bytes() == content  # left as it was, for the operator
    VerifierState(tmp_path / "other.journal", pepper=PEPPER).close()  # lock released


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_to_a_journal_keeps_every_intact_record(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("j") / "s.journal"
    state = VerifierState(path, pepper=PEPPER)
    creds = [bytes([i]) * 8 for i in range(1, 9)]
    for i, cred in enumerate(creds):
        assert commit(state, cred=cred, counter=i + 1) is None
    state.close()
    original = path.read_bytes()
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 6))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(damaged) // 2, len(damaged)))
    damaged = bytes(damaged[:cut])
    path.write_bytes(damaged)
    try:
        state = VerifierState(path, pepper=PEPPER)
    except StateCorrupt:
        assert damaged[:RECORD_SIZE] != original[:RECORD_SIZE]  # only for a damaged header
        return
    for i, cred in enumerate(creds):
        slot = (1 if i == 0 else 2 + i) * RECORD_SIZE  # header, cred 1, its generation, ...
        intact = damaged[slot : slot + RECORD_SIZE] == original[slot : slot + RECORD_SIZE]
        if intact:
            assert commit(state, cred=cred, counter=i + 1) is Reason.COUNTER_NOT_INCREASING
    state.close()


def test_a_failed_rewrite_keeps_the_old_journal_in_use(tmp_path, caplog):
    path = tmp_path / "s.journal"
    state = VerifierState(path, pepper=PEPPER)
    # Something squats the temporary name: the rewrite fails (EISDIR), a real error.
    (tmp_path / f".s.journal.tmp-{os.getpid()}").mkdir()
    for counter in range(1, 6001):
        assert commit(state, counter=counter) is None
    assert "not rewritten" in caplog.text
    assert journal_records(path) == 6002  # header, generation, 6000 presentations
    (tmp_path / f".s.journal.tmp-{os.getpid()}").rmdir()
    for counter in range(6001, 6257):  # the next round of purges rewrites it
        assert commit(state, counter=counter) is None
    assert journal_records(path) < 300
    state.close()
    state = VerifierState(path, pepper=PEPPER)
    assert commit(state, counter=6256) is Reason.COUNTER_NOT_INCREASING
    assert commit(state, counter=6257) is None


def test_a_rewrite_killed_half_way_leaves_nothing_behind(tmp_path):
    path = tmp_path / "s.journal"
    state = VerifierState(path, pepper=PEPPER)
    assert commit(state, counter=1) is None
    state.close()
    (tmp_path / ".s.journal.tmp-99999").write_bytes(b"half a rewrite")
    state = VerifierState(path, pepper=PEPPER)
    assert not (tmp_path / ".s.journal.tmp-99999").exists()
    assert commit(state, counter=1) is Reason.COUNTER_NOT_INCREASING


def test_the_journal_is_rewritten_when_mostly_dead(tmp_path):
    path = tmp_path / "s.journal"
    state = VerifierState(path, pepper=PEPPER)
    for counter in range(1, 20_001):  # one credential presented 20 000 times
        assert commit(state, counter=counter) is None
    assert journal_records(path) < 5000
    state.close()
    state = VerifierState(path, pepper=PEPPER)
    assert commit(state, counter=20_000) is Reason.COUNTER_NOT_INCREASING
    assert commit(state, counter=20_001) is None


def test_replay_keys_cannot_collide_across_credentials():
    assert replay_key(b"AB", b"C") != replay_key(b"A", b"BC")


def test_refused_commit_records_nothing(tmp_path):
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    key = replay_key(b"C" * 8, b"P" * 8)
    assert commit(state, counter=5) is None
    assert commit(state, counter=5, replay=(key, NOW + 100)) is Reason.COUNTER_NOT_INCREASING
    # The replay key of the refused presentation was rolled back:
    assert commit(state, counter=6, replay=(key, NOW + 100)) is None


def test_activation_generation_is_persisted_and_nir_is_not_stored(tmp_path):
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    assert commit(state, gen=3) is None
    state.close()
    state = VerifierState(tmp_path / "s.journal", pepper=PEPPER)
    assert state.highest_generation(NIR) == 3
    assert commit(state, cred=b"D" * 8, gen=2) is Reason.ACTIVATION_SUPERSEDED
    state.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
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


_WRITER = """
import sys
sys.path[:0] = {paths!r}
from comptoir.tokens.replay import VerifierState, replay_key
{opening}
start = int(sys.argv[1])
for i in range(start, start + 100_000):
    cred = (i % 50).to_bytes(8, "big")  # 50 phones, each presenting again and again
    reason = state.commit(now={now}, credential_id=cred, credential_expires={now} + 10**6,
                          counter=i, nir="185057599012304", generation=1 + i // 20_000,
                          replay=(replay_key(cred, i.to_bytes(8, "big")), {now} + 10**6))
    print(i, reason, flush=True)  # after the commit: what the verdict would say
"""


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_sigkill_while_recording_loses_no_acknowledged_presentation(tmp_path, backend, request):
    """A daemon killed at random moments while it records presentations: everything it
    answered "accepted" before dying is refused after the restart; nothing is lost. On this
    PC's journal, and on the PostgreSQL database the counters share (issue 17)."""
    import random

    path = tmp_path / "s.journal"
    if backend == "journal":
        opening, startup = f"state = VerifierState({str(path)!r}, pepper=b'p' * 32)", 0.0
    else:
        server = request.getfixturevalue("pg_server")
        url = server.url(server.new_database())
        opening = ("from comptoir.tokens.replay_pg import open_shared_state\n"
                   f"state = open_shared_state({url!r}, None, pepper=b'p' * 32)")
        startup = 1.0  # psycopg imported, the pool opened, the tables made (the first run)
    script = _WRITER.format(paths=sys.path, opening=opening, now=NOW)
    rng = random.Random(7)
    acknowledged: list[int] = []
    start = 0
    for _ in range(8):
        child = subprocess.Popen([sys.executable, "-c", script, str(start)],
                                 stdout=subprocess.PIPE, text=True)
        time.sleep(startup + rng.uniform(0.3, 0.8))
        child.kill()  # SIGKILL
        out = child.communicate()[0].split("\n")
        done = [line.split() for line in out if line.count(" ") == 1]
        assert all(r == "None" for _, r in done), done[:3]
        acknowledged += [int(i) for i, _ in done]
        start = (acknowledged[-1] if acknowledged else start) + 2  # one may be unacknowledged
    assert len(acknowledged) > 1000
    if backend == "journal":
        state = VerifierState(path, pepper=b"p" * 32)
    else:
        from comptoir.tokens.replay_pg import open_shared_state

        state = open_shared_state(url, None, pepper=b"p" * 32)
    assert state.skipped_records == 0
    newest = 1 + max(acknowledged) // 20_000  # the phone's generation rose along the way
    assert state.highest_generation("185057599012304") == newest
    for i in acknowledged:
        cred = (i % 50).to_bytes(8, "big")
        assert state.commit(now=NOW, credential_id=cred, credential_expires=NOW + 10**6,
                            counter=i, nir="185057599012304", generation=newest,
                            replay=(replay_key(cred, i.to_bytes(8, "big")), NOW + 10**6)) in (
            Reason.REPLAYED, Reason.COUNTER_NOT_INCREASING), i
    state.close()
