# The NFC feature inside the reader application: it keeps the host-issued
# challenge, polls the PN532 through NfcReader between link steps, sends each
# presentation to the host as OBJECT_CHUNKs (straight from the reader's buffer,
# which stays untouched until the last chunk is queued), and reports a failed
# tap as TAP_ERROR. One tap is read once (NfcReader); one challenge is used once.
from nfc_reader import ChallengeReused, NfcError, NfcReader, UnsupportedTarget
from pn532.chip import PN532
from pn532.errors import ApduError, AppLocked, AppNotFound, PN532Error

from comptoir_link import frames as F
from comptoir_link.compat import const, ticks_add, ticks_diff, ticks_ms

_CHUNK_HEADER = const(11)  # kind u8, object id u16, total u32, offset u32
_POLL_INTERVAL_MS = const(60)  # between polls with no phone: the chip, not the loop, waits
_ERROR_TEXT = const(60)
# A presentation read but not yet acknowledged by the host when the link drops
# is sent again in the next session if it is younger than this (the host's
# challenge lives 30 s; the host answers a repeat with the verdict it gave).
_RESEND_WITHIN_MS = const(20000)
MAX_PRESENTATION = const(1024)

# TAP_ERROR codes (docs/protocol.md)
TE_RF = const(1)  # the phone moved or the RF glitched: tap again
TE_NO_APP = const(2)  # the phone has no Comptoir application (6A 82)
TE_LOCKED = const(3)  # the application is locked: unlock it and tap again
TE_NOT_A_PHONE = const(4)  # a card, not a phone in card emulation
TE_CHIP = const(5)  # the PN532 failed (it is re-initialised)
TE_PROTOCOL = const(6)  # the phone answered something we cannot use


def error_code(e):
    if isinstance(e, AppNotFound):
        return TE_NO_APP
    if isinstance(e, AppLocked):
        return TE_LOCKED
    if isinstance(e, UnsupportedTarget):
        return TE_NOT_A_PHONE
    if isinstance(e, ApduError) or isinstance(e, NfcError):
        return TE_PROTOCOL
    from nfc_reader import _rf_error

    if _rf_error(e):
        return TE_RF
    return TE_CHIP


class NfcTask:
    def __init__(self, transport, out_buf, reader=None):
        # A presentation is 350-550 bytes (1 to 8 beneficiaries, docs/tokens.md); 1 kB
        # leaves room, and the heap of a board without PSRAM has none to waste.
        self.reader = reader or NfcReader(PN532(transport),
                                          max_presentation=MAX_PRESENTATION)
        self._out = out_buf  # the application's payload buffer (chunk assembly)
        self._challenge = bytearray(16)
        self.challenge_id = -1  # -1: none held
        self._want_challenge = True
        self._obj = None  # memoryview of the presentation being sent
        self._obj_id = 0
        self._obj_off = 0
        self._obj_at = ticks_ms()
        self._err_owed = 0  # TAP_ERROR code to send (0: none)
        self._err_text = bytearray(_ERROR_TEXT)
        self._err_len = 0
        self._next_poll = ticks_ms()
        self.object_id = 0  # ids shared with other objects (frames) by the app

    @property
    def busy(self):
        """A presentation is on its way to the host: other objects wait."""
        return self._obj is not None

    def on_session(self):
        """A new link session: the host forgot our challenge, ask for one. A
        presentation the host may not have received is sent again, whole."""
        self.challenge_id = -1
        self._want_challenge = True
        if self._obj is not None:
            if ticks_diff(ticks_ms(), self._obj_at) < _RESEND_WITHIN_MS:
                self._obj_off = 0
            else:
                self._obj = None
        self._err_owed = 0

    def on_challenge(self, payload):
        if len(payload) != 18:
            return False
        self.challenge_id = payload[0] | (payload[1] << 8)
        self._challenge[:] = payload[2:18]
        self._want_challenge = False
        return True

    def step(self, link, next_object_id):
        """One bounded step; returns True when it used the object id."""
        if self._want_challenge and link.can_send():
            if link.send(F.CHALLENGE_NEEDED, b"\x01"):
                self._want_challenge = False
        if self._err_owed and link.can_send():
            self._send_error(link)
        if self._obj is not None:
            if self._obj_off < len(self._obj):
                self._send_chunks(link)
            elif link.idle():
                # Every chunk acknowledged: the host has it. Only now is the
                # reader's buffer free for the next tap.
                self._obj = None
            return False
        now = ticks_ms()
        if ticks_diff(now, self._next_poll) < 0:
            return False
        self._next_poll = ticks_add(now, _POLL_INTERVAL_MS)
        challenge = self._challenge if self.challenge_id >= 0 else None
        try:
            pres = self.reader.poll_once(challenge)
        except ChallengeReused:
            self.challenge_id = -1
            self._want_challenge = True
            return False
        except (PN532Error, ApduError, NfcError) as e:
            self._spend_if_used()
            self._queue_error(next_object_id, error_code(e), e)
            return True
        self._spend_if_used()
        if pres is None:
            return False
        self._obj = pres
        self._obj_id = next_object_id
        self._obj_off = 0
        self._obj_at = ticks_ms()
        self._send_chunks(link)
        return True

    def _spend_if_used(self):
        if self.reader.challenge_spent:
            self.challenge_id = -1
            self._want_challenge = True

    def _send_chunks(self, link):
        obj = self._obj
        assert obj is not None
        total = len(obj)
        out = self._out
        room = link.tx_limit - _CHUNK_HEADER
        while self._obj_off < total and link.can_send():
            off = self._obj_off
            n = min(room, total - off)
            out[0] = F.OBJ_NFC_PRESENTATION
            out[1] = self._obj_id & 0xFF
            out[2] = self._obj_id >> 8
            _put_u32(out, 3, total)
            _put_u32(out, 7, off)
            out[11 : 11 + n] = obj[off : off + n]
            link.send(F.OBJECT_CHUNK, out, _CHUNK_HEADER + n)
            self._obj_off = off + n

    def _queue_error(self, obj_id, code, e):
        self._err_owed = code
        self._obj_id = obj_id
        t = (type(e).__name__ + ": " + str(e)).encode()
        n = min(len(t), _ERROR_TEXT)
        self._err_text[:n] = t[:n]
        self._err_len = n

    def _send_error(self, link):
        out = self._out
        out[0] = self._obj_id & 0xFF
        out[1] = self._obj_id >> 8
        out[2] = self._err_owed & 0xFF
        out[3] = self._err_owed >> 8
        out[4 : 4 + self._err_len] = self._err_text[: self._err_len]
        if link.send(F.TAP_ERROR, out, 4 + self._err_len):
            self._err_owed = 0


def _put_u32(b, i, v):
    b[i] = v & 0xFF
    b[i + 1] = (v >> 8) & 0xFF
    b[i + 2] = (v >> 16) & 0xFF
    b[i + 3] = (v >> 24) & 0xFF
