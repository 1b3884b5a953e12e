# ISO 7816-4 command APDUs over ISO-DEP (the PN532 runs ISO 14443-4 itself:
# I-blocks, chaining, WTX), and the Comptoir card-emulation application.
# Short APDUs only (Lc <= 255, Le <= 256): phones in host card emulation and
# the PN532 carry at most about 255 bytes per APDU and no extended length.
# Every APDU is documented byte by byte in docs/nfc.md.
from comptoir_link.compat import const
from pn532.errors import ResponseTooLong, ResponseTooShort, StatusWordError, sw_error

CLA_ISO = const(0x00)
INS_SELECT = const(0xA4)
INS_GET_RESPONSE = const(0xC0)
SW_OK = const(0x9000)

# The Comptoir application (phone side: the wallet app's HCE service).
# AID: F0 (proprietary, ISO 7816-5 category F) + "COMPTOIR" + version 01.
COMPTOIR_AID = b"\xf0COMPTOIR\x01"
CLA_COMPTOIR = const(0x80)
INS_PRESENT = const(0x50)  # data: the host's 16-byte challenge
CHALLENGE_LEN = const(16)
APP_VERSION = const(1)  # first byte of SELECT's answer
# The most the reader asks for per response (Le): 240 data + 2 SW stays well
# under the PN532's 262 bytes and the ~255 that phones are known to carry.
CHUNK = const(240)

_MAX_APDU = const(261)  # 4 header + Lc + 255 + Le
_MAX_RESP = const(258)  # 256 + SW1 SW2
_MAX_EMPTY_PAGES = const(2)


class Apdu:
    """Command/response APDUs through a PN532 (pn532.chip.PN532)."""

    def __init__(self, pn532, timeout_ms=500):
        self.pn = pn532
        self.timeout_ms = timeout_ms
        self._cmd = bytearray(_MAX_APDU)
        self.resp = bytearray(_MAX_RESP + 4)
        self.n = 0  # data bytes of the last response (in resp)
        self.sw = 0  # its status word

    def build(self, cla, ins, p1, p2, data=None, le=-1):
        """Encode a short APDU into the command buffer; return its length.
        le = -1: no Le field; 1..256 (256 is encoded 00)."""
        c = self._cmd
        c[0] = cla
        c[1] = ins
        c[2] = p1
        c[3] = p2
        i = 4
        if data is not None and len(data):
            lc = len(data)
            if lc > 255:
                raise ValueError("short APDU: Lc <= 255")
            c[4] = lc
            c[5 : 5 + lc] = data
            i = 5 + lc
        if le >= 0:
            if le < 1 or le > 256:
                raise ValueError("short APDU: Le in 1..256")
            c[i] = le & 0xFF
            i += 1
        return i

    def transceive(self, cla, ins, p1, p2, data=None, le=-1):
        """Send one APDU; return its status word (data in self.resp[:self.n])."""
        n = self.build(cla, ins, p1, p2, data, le)
        k = self.pn.exchange(self._cmd, n, self.resp, self.timeout_ms)
        if k < 2:
            raise ResponseTooShort("response APDU of %d bytes" % k)
        self.n = k - 2
        self.sw = (self.resp[k - 2] << 8) | self.resp[k - 1]
        return self.sw

    def data(self):
        return memoryview(self.resp)[: self.n]

    def command(self, cla, ins, p1, p2, data=None, le=-1):
        """transceive, and raise the named error of any status word but 90 00."""
        sw = self.transceive(cla, ins, p1, p2, data, le)
        if sw != SW_OK:
            raise sw_error(sw)
        return self.n

    def select(self, aid):
        """SELECT by AID (00 A4 04 00 Lc AID 00); returns the answer's length."""
        return self.command(CLA_ISO, INS_SELECT, 0x04, 0x00, aid, 256)

    def command_paged(self, cla, ins, p1, p2, data, out, le=CHUNK):
        """Send a command whose answer may be long: collect the pages the card
        announces with 61 xx through GET RESPONSE (00 C0 00 00 xx) into out.
        Handles 6C xx (wrong Le: ask again with xx). Returns the total length."""
        cap = len(out)
        total = 0
        empty = 0
        sw = self.transceive(cla, ins, p1, p2, data, le)
        if (sw >> 8) == 0x6C:
            sw = self.transceive(cla, ins, p1, p2, data, (sw & 0xFF) or 256)
        while True:
            n = self.n
            if n:
                if total + n > cap:
                    raise ResponseTooLong("answer over %d bytes" % cap)
                out[total : total + n] = memoryview(self.resp)[:n]
                total += n
                empty = 0
            else:
                empty += 1
                if empty > _MAX_EMPTY_PAGES:
                    raise ResponseTooLong("paging makes no progress")
            if sw == SW_OK:
                return total
            if (sw >> 8) != 0x61:
                raise sw_error(sw)
            xx = sw & 0xFF
            page = xx if 0 < xx <= CHUNK else CHUNK
            sw = self.transceive(CLA_ISO, INS_GET_RESPONSE, 0x00, 0x00, None, page)
            if (sw >> 8) == 0x6C:
                sw = self.transceive(CLA_ISO, INS_GET_RESPONSE, 0, 0, None, (sw & 0xFF) or 256)


def select_comptoir(apdu):
    """SELECT the Comptoir application; check its protocol version."""
    n = apdu.select(COMPTOIR_AID)
    if n < 1 or apdu.resp[0] != APP_VERSION:
        raise StatusWordError(0x6A81)  # FUNCTION_NOT_SUPPORTED: another version
    return apdu.resp[0]


def read_presentation(apdu, challenge, out):
    """PRESENT (80 50 00 00 10 challenge F0): the phone's presentation bound to
    the challenge, paged with 61 xx / GET RESPONSE, into out. Returns its length."""
    if len(challenge) != CHALLENGE_LEN:
        raise ValueError("challenge must be 16 bytes")
    return apdu.command_paged(CLA_COMPTOIR, INS_PRESENT, 0x00, 0x00, challenge, out)
