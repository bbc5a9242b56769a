"""GM/T 0016-2012 (SKF) and GM/T 0006-2012 constants: return codes, algorithm IDs, PIN types,
container types and the sizes of the structures the SKF backend exchanges.

Values are those of the standards' tables (``tests/usbkey/skf/test_skf_constants.py`` pins
them).  One known trap: GM/T 0006's own table numbers the SM2 identifiers differently
(``SGD_SM2`` 0x00020100, ``SGD_SM2_1`` 0x00020200 …); SKF libraries, GM/T 0016 and GM/T 0018
use ``SGD_SM2_1`` = 0x00020100 for SM2 signatures, and so does this module.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "ECC_BLOB_COORDINATE",
    "ECC_PUBLIC_KEY_BLOB_SIZE",
    "ECC_SIGNATURE_BLOB_SIZE",
    "MAX_CONTAINER_NAME",
    "SM2_BITS",
    "AlgId",
    "ContainerType",
    "PinType",
    "Sar",
]

#: ECC coordinates and signature halves are 64-byte fields (``ECC_MAX_XCOORDINATE_BITS_LEN``
#: 512); a 256-bit SM2 value sits right-aligned in the last 32 bytes.
ECC_BLOB_COORDINATE: Final = 64
#: ``ECCPUBLICKEYBLOB`` = ``ULONG BitLen; BYTE XCoordinate[64]; BYTE YCoordinate[64]`` with the
#: standard's 32-bit ULONG (a library built with an 8-byte ULONG has 136: see ``ulong_bits``).
ECC_PUBLIC_KEY_BLOB_SIZE: Final = 132
#: ``ECCSIGNATUREBLOB`` = ``BYTE r[64]; BYTE s[64]``.
ECC_SIGNATURE_BLOB_SIZE: Final = 128
SM2_BITS: Final = 256
#: ``MAX_CNTNAME_LEN`` (also the longest application name this backend sends).
MAX_CONTAINER_NAME: Final = 64


class Sar(IntEnum):
    """SKF return codes (GM/T 0016-2012, appendix A)."""

    OK = 0x00000000
    FAIL = 0x0A000001
    UNKNOWNERR = 0x0A000002
    NOTSUPPORTYETERR = 0x0A000003
    FILEERR = 0x0A000004
    INVALIDHANDLEERR = 0x0A000005
    INVALIDPARAMERR = 0x0A000006
    READFILEERR = 0x0A000007
    WRITEFILEERR = 0x0A000008
    NAMELENERR = 0x0A000009
    KEYUSAGEERR = 0x0A00000A
    MODULUSLENERR = 0x0A00000B
    NOTINITIALIZEERR = 0x0A00000C
    OBJERR = 0x0A00000D
    MEMORYERR = 0x0A00000E
    TIMEOUTERR = 0x0A00000F
    INDATALENERR = 0x0A000010
    INDATAERR = 0x0A000011
    GENRANDERR = 0x0A000012
    HASHOBJERR = 0x0A000013
    HASHERR = 0x0A000014
    GENRSAKEYERR = 0x0A000015
    RSAMODULUSLENERR = 0x0A000016
    CSPIMPRTPUBKEYERR = 0x0A000017
    RSAENCERR = 0x0A000018
    RSADECERR = 0x0A000019
    HASHNOTEQUALERR = 0x0A00001A
    KEYNOTFOUNTERR = 0x0A00001B  # sic: the standard's spelling
    CERTNOTFOUNTERR = 0x0A00001C
    NOTEXPORTERR = 0x0A00001D
    DECRYPTPADERR = 0x0A00001E
    MACLENERR = 0x0A00001F
    BUFFER_TOO_SMALL = 0x0A000020
    KEYINFOTYPEERR = 0x0A000021
    NOT_EVENTERR = 0x0A000022
    DEVICE_REMOVED = 0x0A000023
    PIN_INCORRECT = 0x0A000024
    PIN_LOCKED = 0x0A000025
    PIN_INVALID = 0x0A000026
    PIN_LEN_RANGE = 0x0A000027
    USER_ALREADY_LOGGED_IN = 0x0A000028
    USER_PIN_NOT_INITIALIZED = 0x0A000029
    USER_TYPE_INVALID = 0x0A00002A
    APPLICATION_NAME_INVALID = 0x0A00002B
    APPLICATION_EXISTS = 0x0A00002C
    USER_NOT_LOGGED_IN = 0x0A00002D
    APPLICATION_NOT_EXISTS = 0x0A00002E
    FILE_ALREADY_EXIST = 0x0A00002F
    NO_ROOM = 0x0A000030
    FILE_NOT_EXIST = 0x0A000031
    REACH_MAX_CONTAINER_COUNT = 0x0A000032


class AlgId(IntEnum):
    """Algorithm identifiers (GM/T 0006-2012 as used by GM/T 0016 SKF libraries)."""

    SM1_ECB = 0x00000101
    SM1_CBC = 0x00000102
    SM1_CFB = 0x00000104
    SM1_OFB = 0x00000108
    SM1_MAC = 0x00000110
    SSF33_ECB = 0x00000201
    SSF33_CBC = 0x00000202
    SSF33_CFB = 0x00000204
    SSF33_OFB = 0x00000208
    SSF33_MAC = 0x00000210
    SM4_ECB = 0x00000401  # SGD_SMS4_ECB
    SM4_CBC = 0x00000402
    SM4_CFB = 0x00000404
    SM4_OFB = 0x00000408
    SM4_MAC = 0x00000410
    RSA = 0x00010000
    SM2_1 = 0x00020100  # SM2 signature
    SM2_2 = 0x00020200  # SM2 key exchange
    SM2_3 = 0x00020400  # SM2 encryption
    SM3 = 0x00000001
    SHA1 = 0x00000002
    SHA256 = 0x00000004


class PinType(IntEnum):
    """``ulPINType`` of SKF_VerifyPIN / ChangePIN / GetPINInfo."""

    ADMIN = 0
    USER = 1


class ContainerType(IntEnum):
    """SKF_GetContainerType: what a container holds."""

    EMPTY = 0
    RSA = 1
    ECC = 2
