"""The SKF constants and struct layouts, pinned to GM/T 0016-2012 / GM/T 0006-2012.

A changed value here breaks every vendor library at once, so each one is written out."""

from __future__ import annotations

import pytest

from ebank_auth.usbkey.vendor import skf
from ebank_auth.usbkey.vendor.skf_constants import (
    ECC_PUBLIC_KEY_BLOB_SIZE,
    ECC_SIGNATURE_BLOB_SIZE,
    AlgId,
    ContainerType,
    PinType,
    Sar,
)

SAR = {
    "OK": 0x00000000,
    "FAIL": 0x0A000001,
    "UNKNOWNERR": 0x0A000002,
    "NOTSUPPORTYETERR": 0x0A000003,
    "FILEERR": 0x0A000004,
    "INVALIDHANDLEERR": 0x0A000005,
    "INVALIDPARAMERR": 0x0A000006,
    "READFILEERR": 0x0A000007,
    "WRITEFILEERR": 0x0A000008,
    "NAMELENERR": 0x0A000009,
    "KEYUSAGEERR": 0x0A00000A,
    "MODULUSLENERR": 0x0A00000B,
    "NOTINITIALIZEERR": 0x0A00000C,
    "OBJERR": 0x0A00000D,
    "MEMORYERR": 0x0A00000E,
    "TIMEOUTERR": 0x0A00000F,
    "INDATALENERR": 0x0A000010,
    "INDATAERR": 0x0A000011,
    "GENRANDERR": 0x0A000012,
    "HASHOBJERR": 0x0A000013,
    "HASHERR": 0x0A000014,
    "GENRSAKEYERR": 0x0A000015,
    "RSAMODULUSLENERR": 0x0A000016,
    "CSPIMPRTPUBKEYERR": 0x0A000017,
    "RSAENCERR": 0x0A000018,
    "RSADECERR": 0x0A000019,
    "HASHNOTEQUALERR": 0x0A00001A,
    "KEYNOTFOUNTERR": 0x0A00001B,
    "CERTNOTFOUNTERR": 0x0A00001C,
    "NOTEXPORTERR": 0x0A00001D,
    "DECRYPTPADERR": 0x0A00001E,
    "MACLENERR": 0x0A00001F,
    "BUFFER_TOO_SMALL": 0x0A000020,
    "KEYINFOTYPEERR": 0x0A000021,
    "NOT_EVENTERR": 0x0A000022,
    "DEVICE_REMOVED": 0x0A000023,
    "PIN_INCORRECT": 0x0A000024,
    "PIN_LOCKED": 0x0A000025,
    "PIN_INVALID": 0x0A000026,
    "PIN_LEN_RANGE": 0x0A000027,
    "USER_ALREADY_LOGGED_IN": 0x0A000028,
    "USER_PIN_NOT_INITIALIZED": 0x0A000029,
    "USER_TYPE_INVALID": 0x0A00002A,
    "APPLICATION_NAME_INVALID": 0x0A00002B,
    "APPLICATION_EXISTS": 0x0A00002C,
    "USER_NOT_LOGGED_IN": 0x0A00002D,
    "APPLICATION_NOT_EXISTS": 0x0A00002E,
    "FILE_ALREADY_EXIST": 0x0A00002F,
    "NO_ROOM": 0x0A000030,
    "FILE_NOT_EXIST": 0x0A000031,
    "REACH_MAX_CONTAINER_COUNT": 0x0A000032,
}

ALG = {
    "SM1_ECB": 0x00000101,
    "SM1_CBC": 0x00000102,
    "SM1_CFB": 0x00000104,
    "SM1_OFB": 0x00000108,
    "SM1_MAC": 0x00000110,
    "SSF33_ECB": 0x00000201,
    "SSF33_CBC": 0x00000202,
    "SSF33_CFB": 0x00000204,
    "SSF33_OFB": 0x00000208,
    "SSF33_MAC": 0x00000210,
    "SM4_ECB": 0x00000401,
    "SM4_CBC": 0x00000402,
    "SM4_CFB": 0x00000404,
    "SM4_OFB": 0x00000408,
    "SM4_MAC": 0x00000410,
    "RSA": 0x00010000,
    "SM2_1": 0x00020100,
    "SM2_2": 0x00020200,
    "SM2_3": 0x00020400,
    "SM3": 0x00000001,
    "SHA1": 0x00000002,
    "SHA256": 0x00000004,
}


def test_sar_codes_are_the_standard_table() -> None:
    assert {m.name: m.value for m in Sar} == SAR


def test_algorithm_ids_are_the_standard_table() -> None:
    assert {m.name: m.value for m in AlgId} == ALG


def test_pin_and_container_types() -> None:
    assert (PinType.ADMIN, PinType.USER) == (0, 1)
    assert (ContainerType.EMPTY, ContainerType.RSA, ContainerType.ECC) == (0, 1, 2)


def test_struct_layouts_with_the_standard_32_bit_ulong() -> None:
    ffi = skf._ffi(32)
    assert ffi.sizeof("ULONG") == 4
    assert ffi.sizeof("ECCPUBLICKEYBLOB") == ECC_PUBLIC_KEY_BLOB_SIZE == 132
    assert ffi.offsetof("ECCPUBLICKEYBLOB", "XCoordinate") == 4
    assert ffi.offsetof("ECCPUBLICKEYBLOB", "YCoordinate") == 68
    assert ffi.sizeof("ECCSIGNATUREBLOB") == ECC_SIGNATURE_BLOB_SIZE == 128
    assert ffi.offsetof("ECCSIGNATUREBLOB", "s") == 64
    # DEVINFO: VERSION(2) + 64 + 64 + 32 + 32 + VERSION + VERSION = 198, padded to 200 for the
    # eight ULONGs, then Reserved[64]
    assert ffi.offsetof("DEVINFO", "Manufacturer") == 2
    assert ffi.offsetof("DEVINFO", "SerialNumber") == 162
    assert ffi.offsetof("DEVINFO", "FirmwareVersion") == 196
    assert ffi.offsetof("DEVINFO", "AlgSymCap") == 200
    assert ffi.offsetof("DEVINFO", "Reserved") == 232
    assert ffi.sizeof("DEVINFO") == 296


def test_struct_layouts_with_an_lp64_ulong() -> None:
    ffi = skf._ffi(64)
    assert ffi.sizeof("ULONG") == 8
    assert ffi.sizeof("ECCPUBLICKEYBLOB") == 136
    assert ffi.offsetof("ECCPUBLICKEYBLOB", "XCoordinate") == 8
    assert ffi.sizeof("ECCSIGNATUREBLOB") == 128


def test_other_ulong_sizes_are_refused() -> None:
    from ebank_auth.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        skf._ffi(16)


def test_required_and_optional_functions_do_not_overlap() -> None:
    assert not set(skf.REQUIRED_FUNCTIONS) & set(skf.OPTIONAL_FUNCTIONS)
    assert "SKF_ECCSignData" in skf.REQUIRED_FUNCTIONS
