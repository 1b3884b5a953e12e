# The reader's NFC flow: find a phone, SELECT the Comptoir application, send the
# host's single-use challenge, read the presentation, and read each tap once.
#
#   reader = NfcReader(PN532(UartTransport(uart)))
#   pres = reader.poll_once(challenge)   # memoryview | None; raises named errors
#   if reader.challenge_spent: challenge = None   # ask the host for a new one
#   ...
#   reader.wait_removed(timeout_ms)      # optional: block until the phone leaves
#
# One call is bounded in time (a poll is ~20 ms with no phone; a full read of a
# few kB is well under a second), so the main loop keeps servicing the host link
# between calls. "Same tap" means "still in the field": a phone's UID is random
# on every tap, so after a read (or a refused tap) the reader re-polls until the
# field has been empty `absent_polls` times in a row before it reads again.
from pn532.apdu import CHALLENGE_LEN, Apdu, read_presentation, select_comptoir
from pn532.errors import (
    AppLocked,
    PN532Error,
    RfTimeout,
    RfTransmissionError,
    TargetGone,
)
from pn532.transport import sleep_ms

from comptoir_link.compat import const, ticks_add, ticks_diff, ticks_ms

_PRESENCE_INTERVAL_MS = const(50)


class NfcError(Exception):
    """A tap the reader cannot use (beyond the PN532 and APDU errors)."""


class UnsupportedTarget(NfcError):
    """The target is not ISO 14443-4 (SAK bit 0x20 clear): a card, not a phone."""


class ChallengeReused(ValueError):
    """poll_once was given the challenge it already sent to a phone."""


def _rf_error(e):
    # Errors that mean "the phone moved or the RF glitched", not "the chip failed".
    return isinstance(e, (RfTimeout, RfTransmissionError, TargetGone))


class NfcReader:
    def __init__(
        self,
        pn532,
        max_presentation=6144,
        reinit_after=2,
        absent_polls=2,
        poll_timeout_ms=300,
        exchange_timeout_ms=500,
    ):
        self.pn = pn532
        self.apdu = Apdu(pn532, exchange_timeout_ms)
        self.reinit_after = reinit_after
        self.absent_polls = absent_polls
        self.poll_timeout_ms = poll_timeout_ms
        self._buf = bytearray(max_presentation)
        self._last = bytearray(CHALLENGE_LEN)
        self._have_last = False
        self._need_init = True
        self._misses = 0
        self.present = False  # the current tap was handled; wait for it to end
        self.failures = 0  # consecutive chip-level failures
        self.challenge_spent = False  # the last call put the challenge on air
        # Counters for the bench and the twin.
        self.taps = 0
        self.reinits = 0
        self.errors = 0

    # ---- chip health -------------------------------------------------------

    def start(self):
        """Initialise the PN532 now (poll_once also does it when needed)."""
        self._guard(self._init)

    def _init(self):
        self.pn.init()
        self._need_init = False
        self.reinits += 1

    def _guard(self, fn, *args):
        try:
            r = fn(*args)
        except PN532Error as e:
            self.errors += 1
            if not _rf_error(e):
                self.failures += 1
                if self.failures >= self.reinit_after:
                    self._need_init = True
            raise
        except Exception:
            self.errors += 1
            raise
        self.failures = 0
        return r

    # ---- presence ----------------------------------------------------------

    def _release_quietly(self):
        try:
            self.pn.release()
        except PN532Error:
            pass

    def _in_field(self):
        """One presence check: re-poll. Debounced: absent after absent_polls
        empty polls in a row (an RF glitch must not end a tap)."""
        if self.pn.target.tg:
            self._release_quietly()
        t = self.pn.list_passive_target(self.poll_timeout_ms)
        if t is not None:
            self._misses = 0
            return True
        self._misses += 1
        return self._misses < self.absent_polls

    # ---- the flow ----------------------------------------------------------

    def poll_once(self, challenge):
        """Look for a new tap. Returns the presentation (a memoryview into the
        reader's buffer, valid until the next call) or None: no phone, the
        current tap was already read, or no challenge. Raises PN532Error,
        ApduError or NfcError subclasses. Afterwards, `challenge_spent` says
        whether the challenge went on air: the caller must then drop it."""
        self.challenge_spent = False
        return self._guard(self._poll, challenge)

    def _poll(self, challenge):
        if self._need_init:
            # A re-init keeps `present`: a phone still lying on the reader
            # must not be read a second time.
            self._init()
        if self.present:
            if self._in_field():
                return None
            self.present = False
        if challenge is None:
            return None
        if len(challenge) != CHALLENGE_LEN:
            raise ValueError("challenge must be 16 bytes")
        if self._have_last and _same(challenge, self._last):
            raise ChallengeReused("this challenge was already sent to a phone")
        t = self.pn.list_passive_target(self.poll_timeout_ms)
        if t is None:
            return None
        self.present = True  # from here on, this tap is handled once
        self._misses = 0
        if not t.iso_dep:
            self._release_quietly()
            raise UnsupportedTarget("SAK 0x%02X: not ISO 14443-4" % t.sel_res)
        try:
            select_comptoir(self.apdu)
            self._last[:] = challenge
            self._have_last = True
            self.challenge_spent = True
            n = read_presentation(self.apdu, challenge, self._buf)
        except (AppLocked, PN532Error):
            # The phone moved, the RF glitched, the chip failed, or the person
            # still has to unlock the app: this tap gave nothing, so the next
            # poll reads it again (with a new challenge). Only a refusal that
            # cannot change while the phone lies there (no Comptoir app, a
            # card) keeps `present` and waits for the phone to leave.
            self.present = False
            self._release_quietly()
            raise
        self._release_quietly()
        self.taps += 1
        return memoryview(self._buf)[:n]

    def wait_removed(self, timeout_ms):
        """Block until the current tap's phone left the field (True) or the
        time is up (False). Bounded: each check is one short poll."""
        deadline = ticks_add(ticks_ms(), timeout_ms)
        while self.present:
            if self._need_init:
                self._guard(self._init)
            if not self._guard(self._in_field):
                self.present = False
                break
            if ticks_diff(deadline, ticks_ms()) <= 0:
                return False
            sleep_ms(_PRESENCE_INTERVAL_MS)
        return True


def _same(a, b):
    for i in range(CHALLENGE_LEN):
        if a[i] != b[i]:
            return False
    return True
