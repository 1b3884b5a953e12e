# PN532 NFC controller: frame codec (frame), host interfaces (transport),
# driver (chip), ISO-DEP/APDU layer and the Comptoir application (apdu).
# Import the submodules directly (from pn532.chip import PN532): on the board,
# this keeps what is not used out of the heap.
