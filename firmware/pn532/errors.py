# Named errors of the PN532 driver and the ISO-DEP/APDU layer.
#
# Every failure the reader can meet has its own class (what to do about it) and,
# for the chip's status byte and the card's status word, a name (what happened),
# so that logs and the host's error frames say something precise.


class PN532Error(Exception):
    """Anything that went wrong between the host and the PN532 chip."""


class PN532Timeout(PN532Error):
    """The chip did not answer in time (the command was aborted with an ACK)."""


class PN532NoAck(PN532Timeout):
    """No ACK: chip absent, asleep, wrong port or baud rate, RX/TX swapped."""


class PN532FrameError(PN532Error):
    """A frame from the chip stayed corrupt after the NACK re-requests."""


class PN532SyntaxError(PN532Error):
    """The chip answered the error frame 00 00 FF 01 FF 7F 81 00."""


class PN532BadReply(PN532Error):
    """A well-formed frame whose content does not fit the command."""


class PN532NotFound(PN532Error):
    """Something answered, but it is not a PN532 (GetFirmwareVersion IC != 0x32)."""


# The status byte of InDataExchange/InListPassiveTarget/InRelease (bits 0-5),
# from the PN532 user manual's error table as quoted by nfcpy and libnfc. One
# string, not a dict: names are looked up only when an error happens, and a
# string costs a fraction of a dict's heap.
STATUS_TABLE = (
    " 01:RF_TIMEOUT"  # the target did not answer
    " 02:RF_CRC"
    " 03:RF_PARITY"
    " 04:ANTICOLLISION_BIT_COUNT"
    " 05:MIFARE_FRAMING"
    " 06:BIT_COLLISION"
    " 07:BUFFER_TOO_SMALL"
    " 09:RF_BUFFER_OVERFLOW"
    " 0A:RF_FIELD_TIMEOUT"  # active mode: field not switched on in time
    " 0B:RF_PROTOCOL"
    " 0D:OVERHEATING"
    " 0E:INTERNAL_BUFFER_OVERFLOW"
    " 10:INVALID_PARAMETER"
    " 12:DEP_UNSUPPORTED_COMMAND"
    " 13:RF_FORMAT"  # format error in a received RF frame
    " 14:MIFARE_AUTH"
    " 23:UID_CHECK_BYTE"
    " 25:DEP_INVALID_STATE"
    " 26:OPERATION_NOT_ALLOWED"
    " 27:COMMAND_NOT_ACCEPTABLE"  # e.g. no target listed
    " 29:TARGET_RELEASED"  # released by the initiator / the phone
    " 2A:CARD_ID_MISMATCH"
    " 2B:CARD_DISAPPEARED"
    " 2C:NFCID3_MISMATCH"
    " 2D:OVER_CURRENT"
    " 2E:NAD_MISSING"
    " "
)


def _lookup(table, key):
    i = table.find(" " + key + ":")
    if i < 0:
        return None
    i += len(key) + 2
    return table[i : table.find(" ", i)]


def status_name(code):
    return _lookup(STATUS_TABLE, "%02X" % code) or "STATUS_%02X" % code


class PN532StatusError(PN532Error):
    """The chip ran the command and reports an error in its status byte."""

    def __init__(self, code):
        self.code = code
        self.name = status_name(code)
        super().__init__("PN532 status 0x%02X %s" % (code, self.name))


class RfTimeout(PN532StatusError):
    """01: the target stopped answering (typically: the phone left the field)."""


class RfTransmissionError(PN532StatusError):
    """A corrupted RF exchange (CRC, parity, framing, protocol): worth a retry."""


class TargetGone(PN532StatusError):
    """The target was released or disappeared (29, 2A, 2B), or none is listed (27)."""


class ChipStatusError(PN532StatusError):
    """The chip itself refused or failed (buffer, parameter, overheating, ...)."""


_RF = (0x02, 0x03, 0x04, 0x05, 0x06, 0x0B, 0x13, 0x23)
_GONE = (0x27, 0x29, 0x2A, 0x2B)


def status_error(code):
    """The named error for a non-zero status byte (bits 0-5)."""
    if code == 0x01:
        return RfTimeout(code)
    if code in _RF:
        return RfTransmissionError(code)
    if code in _GONE:
        return TargetGone(code)
    return ChipStatusError(code)


# ISO 7816-4 status words (the phone's answer to an APDU), then SW1 families.
SW_TABLE = (
    " 6281:DATA_CORRUPTED"
    " 6282:END_OF_FILE"
    " 6283:FILE_INVALIDATED"
    " 6400:EXECUTION_ERROR"
    " 6581:MEMORY_FAILURE"
    " 6700:WRONG_LENGTH"
    " 6881:LOGICAL_CHANNEL_NOT_SUPPORTED"
    " 6882:SECURE_MESSAGING_NOT_SUPPORTED"
    " 6982:SECURITY_STATUS_NOT_SATISFIED"  # Comptoir: the app is locked
    " 6983:AUTH_METHOD_BLOCKED"
    " 6985:CONDITIONS_NOT_SATISFIED"
    " 6986:COMMAND_NOT_ALLOWED"
    " 6A80:WRONG_DATA"
    " 6A81:FUNCTION_NOT_SUPPORTED"
    " 6A82:APPLICATION_NOT_FOUND"  # Android: AID not registered
    " 6A84:NOT_ENOUGH_MEMORY"
    " 6A86:INCORRECT_P1_P2"
    " 6A88:DATA_NOT_FOUND"
    " 6B00:WRONG_P1_P2"
    " 6D00:INS_NOT_SUPPORTED"
    " 6E00:CLA_NOT_SUPPORTED"
    " 6F00:UNKNOWN_ERROR"
    " 61:MORE_DATA"
    " 62:WARNING_UNCHANGED"
    " 63:WARNING_CHANGED"
    " 64:EXECUTION_ERROR"
    " 65:MEMORY_ERROR"
    " 67:WRONG_LENGTH"
    " 68:CLA_FUNCTION_NOT_SUPPORTED"
    " 69:COMMAND_NOT_ALLOWED"
    " 6A:WRONG_PARAMETERS"
    " 6C:WRONG_LE"
    " "
)


def sw_name(sw):
    name = _lookup(SW_TABLE, "%04X" % sw)
    if name is None:
        name = "%s_%04X" % (_lookup(SW_TABLE, "%02X" % (sw >> 8)) or "SW", sw)
    return name


class ApduError(Exception):
    """The APDU exchange with the card/phone failed above the PN532 level."""


class StatusWordError(ApduError):
    """The card answered a status word other than 90 00."""

    def __init__(self, sw):
        self.sw = sw
        self.name = sw_name(sw)
        super().__init__("SW %04X %s" % (sw, self.name))


class AppNotFound(StatusWordError):
    """6A 82 to SELECT: the Comptoir app is not installed/registered on this phone."""


class AppLocked(StatusWordError):
    """69 82: the phone's app is locked (secret code or biometrics first)."""


class ResponseTooShort(ApduError):
    """A response APDU without its two status bytes."""


class ResponseTooLong(ApduError):
    """The paged response does not fit the reader's buffer (or never ends)."""


def sw_error(sw):
    if sw == 0x6A82:
        return AppNotFound(sw)
    if sw == 0x6982:
        return AppLocked(sw)
    return StatusWordError(sw)
