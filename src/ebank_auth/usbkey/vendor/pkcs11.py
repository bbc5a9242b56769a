"""PKCS#11 backend: any token whose vendor ships a PKCS#11 module (``.so``/``.dll``).

::

    from ebank_auth.usbkey.vendor.pkcs11 import open_pkcs11

    with open_pkcs11("/usr/lib/softhsm/libsofthsm2.so", slot="t") as token:
        token.verify_pin("1234")                      # C_Login as the user
        info = token.generate_key("login", Algorithm.ECC_P256)
        signature = token.sign_message(b"data", "login")   # ECDSA-SHA256, DER
        info.any_public_key()                         # verify with it

:class:`Pkcs11Token` implements :class:`ebank_auth.usbkey.token.Token` where PKCS#11 fits:
slots and tokens (:class:`Pkcs11Module`), login with the user PIN (the SO PIN as ``ADMIN``),
the PIN state the token reports in its flags (``CKF_USER_PIN_COUNT_LOW``, ``_FINAL_TRY``,
``_LOCKED`` → :class:`~ebank_auth.usbkey.token.PinStatus`, see :func:`pin_status_from_flags`),
key generation (EC P-256, RSA-2048, and SM2 through configured vendor mechanisms), signing
(ECDSA, RSA PKCS#1 v1.5 with SHA-256, SM2), X.509 certificate objects found and imported by
``CKA_ID`` or ``CKA_LABEL``, and public-key export.  What PKCS#11 cannot do raises
:class:`~ebank_auth.errors.NotSupportedByToken`: confirm-and-sign (PKCS#11 has no display and
no button — :attr:`Pkcs11Token.can_confirm` is False, so policy never counts a PKCS#11 key as
"what you see is what you sign"), changing the retry limit, and key attestation.

**Containers** are key labels (``CKA_LABEL``), or ``id:<hex>`` for a ``CKA_ID`` (OpenSC's PIV
keys are ``id:01`` = 9A, ``id:02`` = 9C, …).  A key and its certificate share the ``CKA_ID``.
Every PKCS#11 key is reported with usage ``LOGIN``: the token signs whatever the host sends.

**SM2**: PKCS#11 (up to 3.1) defines no SM2 mechanism; vendors add their own numbers.
:class:`Sm2Mechanisms` (or a TOML file read by :func:`load_sm2_config`) names them; without it
every SM2 request raises :class:`~ebank_auth.errors.NotSupportedByToken`.

**Why PyKCS11** (and not python-pkcs11): PyKCS11 is a thin layer over the C API — mechanisms,
key types and attributes are plain ``CK_ULONG`` numbers, so a vendor's SM2 mechanism and key
type pass through untouched, while python-pkcs11 converts attribute values through its own
enums (a vendor ``CKK_*`` read back from a key fails its ``KeyType`` conversion).  Being thin
also keeps the benchmark honest: :mod:`benchmarks.pkcs11_bench` compares this backend with the
bare ``Session.sign`` call.  PyKCS11 has no type information, so this module is its only
importer (lazily, on first use) and turns every value it returns into typed Python here.

The private halves never leave the token: keys are generated with ``CKA_SENSITIVE`` and
without ``CKA_EXTRACTABLE``; PINs are passed to ``C_Login`` and never logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum, IntEnum, IntFlag
from pathlib import Path
from typing import Any, Final

from asn1crypto import x509 as a_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ebank_auth.crypto import keys, sm2, x509
from ebank_auth.crypto.keys import PublicKey, SignatureAlgorithm
from ebank_auth.errors import (
    BackendUnavailable,
    CardNotPresent,
    ConfigurationError,
    ContainerNotFound,
    EbankAuthError,
    EncodingError,
    InvalidInput,
    KeyAlreadyExists,
    NotSupportedByToken,
    PinIncorrect,
    PinLocked,
    Pkcs11Error,
    Pkcs11ModuleError,
    SecurityStatusNotSatisfied,
    TransportError,
    UnsupportedAlgorithm,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.key_attestation import KeyAttestation
from ebank_auth.usbkey.protocol import (
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    DEFAULT_RETRY_LIMIT,
    Algorithm,
    ContainerUsage,
    DeviceCapability,
    DeviceInfo,
    PinRef,
    check_pin_complexity,
)
from ebank_auth.usbkey.token import (
    AttestationReport,
    ContainerInfo,
    PinStatus,
    PublicKeyInfo,
    SignResult,
    TokenPublicKey,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "P256_EC_PARAMS",
    "SM2_EC_PARAMS",
    "Ckr",
    "PinFlags",
    "Pkcs11Certificate",
    "Pkcs11Module",
    "Pkcs11SigningKey",
    "Pkcs11Slot",
    "Pkcs11Token",
    "Pkcs11TokenInfo",
    "Sm2Mechanisms",
    "Sm2SignInput",
    "TokenFlag",
    "load_sm2_config",
    "open_pkcs11",
    "pin_status_from_flags",
]

_log = logging.getLogger(__name__)

#: DER of the named-curve OIDs that go into ``CKA_EC_PARAMS``
P256_EC_PARAMS: Final = bytes.fromhex("06082a8648ce3d030107")  # prime256v1
SM2_EC_PARAMS: Final = bytes.fromhex("06082a811ccf5501822d")  # sm2p256v1 (GM/T 0006)
#: DigestInfo prefix of SHA-256 (RFC 8017 §9.2, note 1)
_SHA256_DIGEST_INFO: Final = bytes.fromhex("3031300d060960864801650304020105000420")
_MAX_LABEL: Final = 64


# --------------------------------------------------------------------------- PKCS#11 numbers
class Ckr(IntEnum):
    """The ``CKR_*`` return values this backend tells apart (PKCS#11 v2.40 §11.1)."""

    OK = 0x000
    GENERAL_ERROR = 0x005
    FUNCTION_FAILED = 0x006
    ARGUMENTS_BAD = 0x007
    ATTRIBUTE_TYPE_INVALID = 0x012
    ATTRIBUTE_VALUE_INVALID = 0x013
    DATA_INVALID = 0x020
    DATA_LEN_RANGE = 0x021
    DEVICE_ERROR = 0x030
    DEVICE_MEMORY = 0x031
    DEVICE_REMOVED = 0x032
    FUNCTION_NOT_SUPPORTED = 0x054
    KEY_HANDLE_INVALID = 0x060
    KEY_SIZE_RANGE = 0x062
    KEY_TYPE_INCONSISTENT = 0x063
    KEY_FUNCTION_NOT_PERMITTED = 0x068
    MECHANISM_INVALID = 0x070
    MECHANISM_PARAM_INVALID = 0x071
    OBJECT_HANDLE_INVALID = 0x082
    PIN_INCORRECT = 0x0A0
    PIN_INVALID = 0x0A1
    PIN_LEN_RANGE = 0x0A2
    PIN_EXPIRED = 0x0A3
    PIN_LOCKED = 0x0A4
    SESSION_CLOSED = 0x0B0
    SESSION_HANDLE_INVALID = 0x0B3
    SESSION_READ_ONLY = 0x0B5
    TEMPLATE_INCOMPLETE = 0x0D0
    TEMPLATE_INCONSISTENT = 0x0D1
    TOKEN_NOT_PRESENT = 0x0E0
    TOKEN_NOT_RECOGNIZED = 0x0E1
    TOKEN_WRITE_PROTECTED = 0x0E2
    USER_ALREADY_LOGGED_IN = 0x100
    USER_NOT_LOGGED_IN = 0x101
    USER_PIN_NOT_INITIALIZED = 0x102
    USER_ANOTHER_ALREADY_LOGGED_IN = 0x104
    CRYPTOKI_NOT_INITIALIZED = 0x190


class TokenFlag(IntFlag):
    """``CK_TOKEN_INFO.flags`` (PKCS#11 v2.40 §5.2, table 8)."""

    RNG = 0x1
    WRITE_PROTECTED = 0x2
    LOGIN_REQUIRED = 0x4
    USER_PIN_INITIALIZED = 0x8
    PROTECTED_AUTHENTICATION_PATH = 0x100
    TOKEN_INITIALIZED = 0x400
    USER_PIN_COUNT_LOW = 0x10000
    USER_PIN_FINAL_TRY = 0x20000
    USER_PIN_LOCKED = 0x40000
    USER_PIN_TO_BE_CHANGED = 0x80000
    SO_PIN_COUNT_LOW = 0x100000
    SO_PIN_FINAL_TRY = 0x200000
    SO_PIN_LOCKED = 0x400000
    SO_PIN_TO_BE_CHANGED = 0x800000


class _SlotFlag(IntFlag):
    TOKEN_PRESENT = 0x1
    REMOVABLE_DEVICE = 0x2
    HW_SLOT = 0x4


class _Cka(IntEnum):
    CLASS = 0x000
    TOKEN = 0x001
    PRIVATE = 0x002
    LABEL = 0x003
    VALUE = 0x011
    CERTIFICATE_TYPE = 0x080
    ISSUER = 0x081
    SERIAL_NUMBER = 0x082
    KEY_TYPE = 0x100
    SUBJECT = 0x101
    ID = 0x102
    SENSITIVE = 0x103
    SIGN = 0x108
    VERIFY = 0x10A
    MODULUS = 0x120
    MODULUS_BITS = 0x121
    PUBLIC_EXPONENT = 0x122
    EXTRACTABLE = 0x162
    EC_PARAMS = 0x180
    EC_POINT = 0x181
    ALWAYS_AUTHENTICATE = 0x202


class _Cko(IntEnum):
    CERTIFICATE = 1
    PUBLIC_KEY = 2
    PRIVATE_KEY = 3


class _Ckk(IntEnum):
    RSA = 0
    EC = 3


class _Ckm(IntEnum):
    RSA_PKCS_KEY_PAIR_GEN = 0x0000
    RSA_PKCS = 0x0001
    EC_KEY_PAIR_GEN = 0x1040
    ECDSA = 0x1041


_CKU_SO: Final = 0
_CKU_USER: Final = 1
_CKC_X_509: Final = 0
_CKF_RW_SESSION: Final = 0x2

_REMOVED: Final = frozenset(
    {Ckr.DEVICE_REMOVED, Ckr.TOKEN_NOT_PRESENT, Ckr.SESSION_CLOSED, Ckr.SESSION_HANDLE_INVALID}
)
_HANDLE_GONE: Final = frozenset({Ckr.OBJECT_HANDLE_INVALID, Ckr.KEY_HANDLE_INVALID})
_NOT_OFFERED: Final = frozenset(
    {Ckr.MECHANISM_INVALID, Ckr.FUNCTION_NOT_SUPPORTED, Ckr.MECHANISM_PARAM_INVALID}
)


# --------------------------------------------------------------------------- PIN state
@dataclass(frozen=True)
class PinFlags:
    """What a token says about one PIN in its flags (PKCS#11 gives no counts)."""

    count_low: bool
    final_try: bool
    locked: bool
    to_be_changed: bool

    @classmethod
    def from_flags(cls, flags: int, ref: PinRef = PinRef.USER) -> PinFlags:
        if ref is PinRef.USER:
            bits = (
                TokenFlag.USER_PIN_COUNT_LOW,
                TokenFlag.USER_PIN_FINAL_TRY,
                TokenFlag.USER_PIN_LOCKED,
                TokenFlag.USER_PIN_TO_BE_CHANGED,
            )
        else:
            bits = (
                TokenFlag.SO_PIN_COUNT_LOW,
                TokenFlag.SO_PIN_FINAL_TRY,
                TokenFlag.SO_PIN_LOCKED,
                TokenFlag.SO_PIN_TO_BE_CHANGED,
            )
        low, final, locked, change = (bool(flags & b) for b in bits)
        return cls(low, final, locked, change)


def pin_status_from_flags(
    flags: int, ref: PinRef = PinRef.USER, max_retries: int = DEFAULT_RETRY_LIMIT
) -> PinStatus:
    """The :class:`PinStatus` a token's flags imply.  PKCS#11 reports no numbers, so
    ``max_retries`` (the vendor's limit) is given, and the count is the *lowest* the flags
    allow — fail closed: ``LOCKED`` → 0 (it wins over every other flag), ``FINAL_TRY`` → 1,
    ``COUNT_LOW`` → 2 (1 when the limit is 2 or less), no flag → ``max_retries``."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
        raise ConfigurationError("max_retries must be a positive whole number")
    state = PinFlags.from_flags(flags, ref)
    if state.locked:
        remaining = 0
    elif state.final_try:
        remaining = 1
    elif state.count_low:
        remaining = max(1, min(2, max_retries - 1))
    else:
        remaining = max_retries
    return PinStatus(ref, max_retries, remaining)


# --------------------------------------------------------------------------- SM2 config
class Sm2SignInput(str, Enum):
    """What the vendor's SM2 signing mechanism takes.

    ``MESSAGE``: the whole message — the token computes ``Z`` (default ID
    ``1234567812345678``) and ``e = SM3(Z ‖ M)`` itself (an "SM2 with SM3" mechanism).
    ``DIGEST``: the 32-byte ``e``, computed by the host (a raw "SM2" mechanism)."""

    MESSAGE = "message"
    DIGEST = "digest"


@dataclass(frozen=True)
class Sm2Mechanisms:
    """A vendor's SM2 numbers: ``keygen`` (``CKM_*`` generating an SM2 key pair), ``sign``
    (``CKM_*`` signing with it), ``key_type`` (the ``CKK_*`` of SM2 keys), ``sign_input``
    (see :class:`Sm2SignInput`) and ``ec_params`` (``CKA_EC_PARAMS`` of the SM2 curve; the
    sm2p256v1 OID by default).  The token's signature is ``r ‖ s`` (64 bytes) or DER."""

    keygen: int
    sign: int
    key_type: int
    sign_input: Sm2SignInput = Sm2SignInput.MESSAGE
    ec_params: bytes = SM2_EC_PARAMS

    def __post_init__(self) -> None:
        for name in ("keygen", "sign", "key_type"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**32:
                raise ConfigurationError(
                    f"SM2 mechanism setting {name!r} must be a PKCS#11 number between 1 and "
                    "0xFFFFFFFF (vendor numbers start at 0x80000000): see the vendor's manual"
                )
        if not isinstance(self.sign_input, Sm2SignInput):
            raise ConfigurationError("SM2 sign_input must be 'message' or 'digest'")
        if not isinstance(self.ec_params, bytes) or not self.ec_params:
            raise ConfigurationError("SM2 ec_params must be the DER of the curve OID")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Sm2Mechanisms:
        """From ``{"keygen": 0x8000…, "sign": "0x8000…", "key_type": …, "sign_input":
        "message", "ec_params": "06082a811ccf5501822d"}`` (numbers as integers or hex text)."""
        unknown = set(data) - {"keygen", "sign", "key_type", "sign_input", "ec_params"}
        if unknown:
            raise ConfigurationError(
                f"unknown SM2 mechanism setting(s) {sorted(unknown)}: use keygen, sign, "
                "key_type, sign_input, ec_params"
            )
        missing = {"keygen", "sign", "key_type"} - set(data)
        if missing:
            raise ConfigurationError(f"SM2 mechanism settings lack {sorted(missing)}")

        def number(name: str) -> int:
            value = data[name]
            if isinstance(value, str):
                try:
                    return int(value, 0)
                except ValueError:
                    raise ConfigurationError(
                        f"SM2 setting {name!r} = {value!r} is not a number (write 0x80000001)"
                    ) from None
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"SM2 setting {name!r} must be a number")
            return value

        try:
            sign_input = Sm2SignInput(str(data.get("sign_input", "message")))
        except ValueError:
            raise ConfigurationError("SM2 sign_input must be 'message' or 'digest'") from None
        params = data.get("ec_params", SM2_EC_PARAMS.hex())
        try:
            ec_params = bytes.fromhex(str(params))
        except ValueError:
            raise ConfigurationError("SM2 ec_params must be hex (the DER of the OID)") from None
        return cls(number("keygen"), number("sign"), number("key_type"), sign_input, ec_params)


def load_sm2_config(path: str | os.PathLike[str]) -> Sm2Mechanisms:
    """Read the ``[sm2]`` table of a TOML file (see docs/pkcs11.md)."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the SM2 mechanism file {path}: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"the SM2 mechanism file {path} is not TOML: {exc}") from None
    table = doc.get("sm2")
    if not isinstance(table, dict):
        raise ConfigurationError(f"the SM2 mechanism file {path} has no [sm2] table")
    return Sm2Mechanisms.from_mapping(table)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Pkcs11Slot:
    slot_id: int
    description: str
    manufacturer: str
    token_present: bool
    removable: bool
    hardware: bool


@dataclass(frozen=True)
class Pkcs11TokenInfo:
    slot_id: int
    label: str
    manufacturer: str
    model: str
    serial: str
    flags: TokenFlag
    min_pin_length: int
    max_pin_length: int
    firmware_version: str

    @property
    def initialized(self) -> bool:
        return bool(self.flags & TokenFlag.TOKEN_INITIALIZED)


@dataclass(frozen=True)
class Pkcs11Certificate:
    """An X.509 certificate object: its ``CKA_LABEL``, ``CKA_ID`` and DER value."""

    label: str
    id: bytes
    der: bytes


@dataclass(frozen=True)
class _Key:
    handle: Any  # the private key's CK_OBJECT_HANDLE
    label: str
    id: bytes
    algorithm: Algorithm
    spki: bytes
    always_authenticate: bool = False


# --------------------------------------------------------------------------- the library
_import_lock = threading.Lock()


def _pykcs11() -> Any:
    """The PyKCS11 package (imported on first use; the ``pkcs11`` extra)."""
    with _import_lock:
        try:
            import PyKCS11
        except ImportError:
            raise BackendUnavailable(
                "the PKCS#11 backend needs PyKCS11: pip install 'ebank-auth[pkcs11]'"
            ) from None
    return PyKCS11


def _ckr_name(rv: int) -> str:
    try:
        return f"CKR_{Ckr(rv).name}"
    except ValueError:
        return f"CKR 0x{rv:08X}"


def _text(value: object) -> str:
    return str(value).strip()


class Pkcs11Module:
    """A loaded PKCS#11 module (``C_Initialize`` done); :meth:`close` finalizes it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        file = Path(self.path)
        if not file.exists():
            raise Pkcs11ModuleError(
                f"no PKCS#11 module at {self.path}: give the path of the vendor's module "
                "(e.g. /usr/lib/softhsm/libsofthsm2.so, opensc-pkcs11.so)"
            )
        if not file.is_file():
            raise Pkcs11ModuleError(f"{self.path} is not a file: give the module's .so path")
        p11 = _pykcs11()
        self._p11 = p11
        lib = p11.PyKCS11Lib()
        try:
            lib.load(self.path)
        except p11.PyKCS11Error as exc:
            if exc.value == -4:  # loaded, but C_GetFunctionList is missing
                raise Pkcs11ModuleError(
                    f"{self.path} is a shared library but not a PKCS#11 module (it has no "
                    "C_GetFunctionList): give the token vendor's PKCS#11 module"
                ) from None
            if exc.value == -1:
                raise Pkcs11ModuleError(
                    f"{self.path} cannot be loaded as a shared library (wrong file, wrong "
                    "architecture or a missing dependency): give the vendor's PKCS#11 module"
                ) from None
            raise Pkcs11ModuleError(
                f"the PKCS#11 module {self.path} failed to initialise ({_ckr_name(exc.value)}): "
                "check its configuration (e.g. SOFTHSM2_CONF) and the vendor's log"
            ) from None
        self._lib: Any = lib
        self._closed = False

    # -- plumbing ---------------------------------------------------------------------------
    def _error(self, exc: Exception, what: str) -> EbankAuthError:
        rv = int(getattr(exc, "value", Ckr.GENERAL_ERROR))
        if rv in _REMOVED:
            return CardNotPresent(
                f"the token went away while {what} ({_ckr_name(rv)}): insert it and start "
                "again; nothing was completed"
            )
        if rv == Ckr.DEVICE_ERROR:
            return TransportError(f"the token failed while {what} (CKR_DEVICE_ERROR): re-insert it")
        return Pkcs11Error(
            rv, f"the PKCS#11 module refused {what} ({_ckr_name(rv)})", _ckr_name(rv)
        )

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        if self._closed:
            raise InvalidInput("the PKCS#11 module was closed: open it again")
        try:
            yield
        except self._p11.PyKCS11Error as exc:
            raise self._error(exc, what) from None

    # -- slots and tokens -------------------------------------------------------------------
    def slots(self, *, token_present: bool = False) -> list[Pkcs11Slot]:
        """``C_GetSlotList`` + ``C_GetSlotInfo``."""
        with self._calling("listing the slots"):
            out = []
            for sid in self._lib.getSlotList(tokenPresent=token_present):
                info = self._lib.getSlotInfo(sid)
                flags = _SlotFlag(int(info.flags) & 0x7)
                out.append(
                    Pkcs11Slot(
                        int(sid),
                        _text(info.slotDescription),
                        _text(info.manufacturerID),
                        bool(flags & _SlotFlag.TOKEN_PRESENT),
                        bool(flags & _SlotFlag.REMOVABLE_DEVICE),
                        bool(flags & _SlotFlag.HW_SLOT),
                    )
                )
            return out

    def token_info(self, slot_id: int) -> Pkcs11TokenInfo:
        """``C_GetTokenInfo`` of the token in ``slot_id``."""
        try:
            info = self._lib.getTokenInfo(int(slot_id))
        except self._p11.PyKCS11Error as exc:
            if int(exc.value) in (Ckr.TOKEN_NOT_PRESENT, Ckr.TOKEN_NOT_RECOGNIZED):
                raise CardNotPresent(
                    f"no token in PKCS#11 slot {slot_id}: insert the token"
                ) from None
            if int(exc.value) == Ckr.ARGUMENTS_BAD or int(exc.value) == 0x003:  # SLOT_ID_INVALID
                raise InvalidInput(f"the module has no slot {slot_id}: list the slots") from None
            raise self._error(exc, "reading the token information") from None
        fw = info.firmwareVersion
        return Pkcs11TokenInfo(
            int(slot_id),
            _text(info.label),
            _text(info.manufacturerID),
            _text(info.model),
            _text(info.serialNumber),
            TokenFlag(int(info.flags) & 0xFFFFFF),
            int(info.ulMinPinLen),
            int(info.ulMaxPinLen),
            f"{int(fw[0])}.{int(fw[1])}",
        )

    def tokens(self) -> list[Pkcs11TokenInfo]:
        """Every present token (unreadable ones are left out and logged)."""
        out = []
        for slot in self.slots(token_present=True):
            try:
                out.append(self.token_info(slot.slot_id))
            except CardNotPresent:
                _log.debug("slot %d: token went away while listing", slot.slot_id)
        return out

    def mechanisms(self, slot_id: int) -> frozenset[int]:
        """The ``CKM_*`` numbers the token in ``slot_id`` offers."""
        numbers = self._p11.LowLevel.ckulonglist()
        with self._calling("listing the mechanisms"):
            rv = self._lib.lib.C_GetMechanismList(int(slot_id), numbers)
            if rv != Ckr.OK:
                raise self._p11.PyKCS11Error(rv)
        return frozenset(int(m) for m in numbers)

    def find_slot(self, slot: int | str | None = None) -> int:
        """The slot id for ``slot``: a slot id, a token label, or ``None`` for the first
        initialised token.  :class:`CardNotPresent` when no such token is there."""
        present = self.slots(token_present=True)
        if isinstance(slot, int) and not isinstance(slot, bool):
            if not any(s.slot_id == slot for s in self.slots()):
                raise InvalidInput(
                    f"the module has no slot {slot}: use one of {[s.slot_id for s in self.slots()]}"
                )
            if not any(s.slot_id == slot for s in present):
                raise CardNotPresent(f"no token in PKCS#11 slot {slot}: insert the token")
            return slot
        candidates = [self.token_info(s.slot_id) for s in present]
        if slot is None:
            for info in candidates:
                if info.initialized:
                    return info.slot_id
            raise CardNotPresent(
                "no initialised token in any slot of the PKCS#11 module: insert the token "
                "(or initialise it with the vendor's tool)"
            )
        for info in candidates:
            if info.label == slot:
                return info.slot_id
        raise CardNotPresent(
            f"no token labelled {slot!r}: present are {[i.label for i in candidates]}"
        )

    def open(
        self,
        slot: int | str | None = None,
        *,
        sm2: Sm2Mechanisms | None = None,
        max_pin_retries: int = DEFAULT_RETRY_LIMIT,
    ) -> Pkcs11Token:
        """A session with the token in ``slot`` (see :meth:`find_slot`)."""
        return Pkcs11Token(self, self.find_slot(slot), sm2=sm2, max_pin_retries=max_pin_retries)

    def close(self) -> None:
        """``C_Finalize`` (when no other user of the same module is left) and unload."""
        if not self._closed:
            self._closed = True
            self._lib.unload()

    def __enter__(self) -> Pkcs11Module:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- the token
class Pkcs11Token:
    """A session with one PKCS#11 token (see the module docstring).  ``sm2`` names the
    vendor's SM2 mechanisms (none: SM2 is refused); ``max_pin_retries`` is the vendor's PIN
    limit, which PKCS#11 does not report (used by :meth:`pin_status`)."""

    def __init__(
        self,
        module: Pkcs11Module,
        slot_id: int,
        *,
        sm2: Sm2Mechanisms | None = None,
        max_pin_retries: int = DEFAULT_RETRY_LIMIT,
        owns_module: bool = False,
    ) -> None:
        pin_status_from_flags(0, PinRef.USER, max_pin_retries)  # validates the limit
        self.module = module
        self.slot_id = int(slot_id)
        self.sm2 = sm2
        self._max_retries = max_pin_retries
        self._owns_module = owns_module
        self._p11 = module._p11
        self._keys: dict[str, _Key] = {}
        info = module.token_info(self.slot_id)
        self.info = info
        try:
            try:
                self._session: Any = module._lib.openSession(self.slot_id, _CKF_RW_SESSION)
            except self._p11.PyKCS11Error as exc:
                if int(exc.value) != Ckr.TOKEN_WRITE_PROTECTED:
                    raise
                self._session = module._lib.openSession(self.slot_id, 0)
        except self._p11.PyKCS11Error as exc:
            raise module._error(exc, "opening a session") from None
        self._closed = False
        self._attestation = AttestationReport(
            info.serial,
            False,
            "",
            info.firmware_version,
            "",
            "PKCS#11 has no device attestation: the module's answers are taken as they come",
        )
        # Mechanisms the ECDSA and RSA paths use: made once, so a signature costs no more
        # than the bare library call.
        self._mech_ecdsa = self._p11.Mechanism(_Ckm.ECDSA)
        self._mech_rsa = self._p11.Mechanism(_Ckm.RSA_PKCS)

    # -- plumbing ---------------------------------------------------------------------------
    def _token_gone(self) -> bool:
        try:
            self.module._lib.getTokenInfo(self.slot_id)
        except self._p11.PyKCS11Error:
            return True
        return False

    def _error(self, exc: Exception, what: str) -> EbankAuthError:
        rv = int(getattr(exc, "value", Ckr.GENERAL_ERROR))
        if rv in (Ckr.USER_NOT_LOGGED_IN, Ckr.PIN_EXPIRED):
            return SecurityStatusNotSatisfied(
                f"{what} needs the user PIN: verify the PIN first"
                + (" (the token says it has expired: change it)" if rv == Ckr.PIN_EXPIRED else "")
            )
        if rv in _NOT_OFFERED:
            return NotSupportedByToken(
                f"the token's PKCS#11 module does not offer {what} ({_ckr_name(rv)})"
            )
        if rv in (Ckr.DATA_LEN_RANGE, Ckr.DATA_INVALID):
            return EncodingError(f"the token refused the data for {what} ({_ckr_name(rv)})")
        if rv in (Ckr.TOKEN_WRITE_PROTECTED, Ckr.SESSION_READ_ONLY):
            return NotSupportedByToken(f"the token is read-only: it refused {what}")
        if rv in _HANDLE_GONE or rv in (Ckr.GENERAL_ERROR, Ckr.FUNCTION_FAILED):
            self._keys.clear()
            if self._token_gone():
                return CardNotPresent(
                    f"the token went away while {what} ({_ckr_name(rv)}): insert it and "
                    "start again; nothing was completed"
                )
            if rv in _HANDLE_GONE:
                return ContainerNotFound(
                    f"the key used for {what} is gone from the token: list the containers"
                )
        return self.module._error(exc, what)

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        if self._closed:
            raise InvalidInput("this PKCS#11 token session was closed: open the token again")
        try:
            yield
        except self._p11.PyKCS11Error as exc:
            raise self._error(exc, what) from None

    def _flags(self) -> int:
        try:
            return int(self.module._lib.getTokenInfo(self.slot_id).flags)
        except self._p11.PyKCS11Error as exc:
            raise self._error(exc, "reading the token flags") from None

    # -- Token: identity --------------------------------------------------------------------
    @property
    def description(self) -> str:
        return f"pkcs11:{self.module.path}:{self.info.label}"

    @property
    def attestation(self) -> AttestationReport | None:
        return self._attestation

    @property
    def can_confirm(self) -> bool:
        return False  # PKCS#11 has no display and no button

    def attest(self) -> AttestationReport:
        return self._attestation

    def device_info(self) -> DeviceInfo:
        caps = DeviceCapability(0)
        mechs = self.module.mechanisms(self.slot_id)
        if _Ckm.RSA_PKCS_KEY_PAIR_GEN in mechs:
            caps |= DeviceCapability.RSA2048
        if self.sm2 is not None and {self.sm2.keygen, self.sm2.sign} <= mechs:
            caps |= DeviceCapability.SM2
        info = self.module.token_info(self.slot_id)
        return DeviceInfo(
            serial=info.serial,
            label=info.label,
            manufacturer=info.manufacturer,
            firmware_version=info.firmware_version,
            firmware_hash=b"",
            capabilities=caps,
            protocol_version=0,
        )

    def random(self, length: int) -> bytes:
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 255:
            raise InvalidInput("ask for 1 to 255 random bytes")
        if not self._flags() & TokenFlag.RNG:
            raise NotSupportedByToken("the token has no random-number generator (no CKF_RNG)")
        with self._calling("generating random bytes"):
            return bytes(self._session.generateRandom(length))

    # -- PINs -------------------------------------------------------------------------------
    def pin_flags(self, ref: PinRef = PinRef.USER) -> PinFlags:
        """What the token's flags say about the user (or SO) PIN."""
        return PinFlags.from_flags(self._flags(), ref)

    def pin_status(self, ref: PinRef = PinRef.USER) -> PinStatus:
        """The PIN state from the token's flags; counts are the lowest the flags allow (see
        :func:`pin_status_from_flags`)."""
        return pin_status_from_flags(self._flags(), ref, self._max_retries)

    def _pin_failure(self, ref: PinRef) -> EbankAuthError:
        status = self.pin_status(ref)
        who = "user PIN" if ref is PinRef.USER else "SO (admin) PIN"
        if status.locked:
            return PinLocked(f"the {who} is now locked: unblock it with the SO PIN or the vendor")
        flags = self.pin_flags(ref)
        if flags.final_try:
            detail = "one try is left before the token locks"
        elif flags.count_low:
            detail = "the token warns that few tries are left"
        else:
            detail = "the token does not say how many tries are left"
        return PinIncorrect(status.remaining, f"wrong {who}: {detail}")

    def _login(self, pin: str, ref: PinRef, what: str) -> None:
        if not isinstance(pin, str) or not pin:
            raise InvalidInput("the PIN must be non-empty text")
        if self.pin_status(ref).locked:
            raise PinLocked()
        user = _CKU_USER if ref is PinRef.USER else _CKU_SO
        self._keys.clear()
        try:
            with suppress(self._p11.PyKCS11Error):  # not logged in: fine
                self._session.logout()
            self._session.login(pin, user_type=user)
        except self._p11.PyKCS11Error as exc:
            rv = int(exc.value)
            if rv == Ckr.PIN_INCORRECT:
                raise self._pin_failure(ref) from None
            if rv == Ckr.PIN_LOCKED:
                raise PinLocked() from None
            if rv in (Ckr.PIN_LEN_RANGE, Ckr.PIN_INVALID):
                raise InvalidInput(
                    f"the token does not accept a PIN of that form ({_ckr_name(rv)}): it takes "
                    f"{self.info.min_pin_length}-{self.info.max_pin_length} characters"
                ) from None
            if rv == Ckr.USER_PIN_NOT_INITIALIZED:
                raise NotSupportedByToken(
                    "the token's user PIN is not set: initialise it with the SO PIN first"
                ) from None
            raise self._error(exc, what) from None

    def verify_pin(self, pin: str, ref: PinRef = PinRef.USER) -> None:
        """``C_Login`` as the user (``ADMIN``: as the security officer).  A session that was
        logged in is logged out first, so the PIN is always checked."""
        self._login(pin, ref, "the login")

    def change_pin(self, old: str, new: str, ref: PinRef = PinRef.USER) -> None:
        """``C_SetPIN`` after logging in with ``old``; ``new`` must meet UK-4."""
        check_pin_complexity(new)
        self._login(old, ref, "the PIN change")
        with self._calling("the PIN change"):
            self._session.setPin(old, new)

    def unblock_pin(self, admin_pin: str, new_user_pin: str) -> None:
        """Log in as the SO and set a new user PIN (``C_InitPIN``), then log out."""
        check_pin_complexity(new_user_pin)
        self._login(admin_pin, PinRef.ADMIN, "the unblock")
        try:
            with self._calling("setting the user PIN"):
                self._session.initPin(new_user_pin)
        finally:
            self.logout()

    def set_retry_limit(self, limit: int, ref: PinRef = PinRef.USER) -> None:
        raise NotSupportedByToken(
            "PKCS#11 has no function to change the PIN retry limit: use the vendor's tool"
        )

    def logout(self) -> None:
        """``C_Logout`` (nothing happens when no one is logged in)."""
        self._keys.clear()
        try:
            self._session.logout()
        except self._p11.PyKCS11Error as exc:
            if int(exc.value) != Ckr.USER_NOT_LOGGED_IN:
                raise self._error(exc, "the logout") from None

    # -- objects ----------------------------------------------------------------------------
    def _find(self, template: list[tuple[int, object]]) -> list[Any]:
        with self._calling("searching objects"):
            return list(self._session.findObjects(template))

    def _attrs(self, handle: Any, attrs: list[int]) -> list[Any]:
        with self._calling("reading an object"):
            return list(self._session.getAttributeValue(handle, attrs))

    @staticmethod
    def _selector(container: str) -> tuple[int, object]:
        if not isinstance(container, str) or not container:
            raise InvalidInput("give a container: a key label or id:<hex>")
        if container.lower().startswith("id:"):
            try:
                return (_Cka.ID, bytes.fromhex(container[3:]))
            except ValueError:
                raise InvalidInput(f"{container!r}: id: takes hex digits, e.g. id:02") from None
        return (_Cka.LABEL, container)

    def _algorithm_of(self, handle: Any) -> Algorithm:
        key_type, params = self._attrs(handle, [_Cka.KEY_TYPE, _Cka.EC_PARAMS])
        key_type = int(key_type)
        ec_params = bytes(params) if params is not None else b""
        if self.sm2 is not None and key_type == self.sm2.key_type:
            return Algorithm.SM2
        if key_type == _Ckk.EC:
            if ec_params == P256_EC_PARAMS:
                return Algorithm.ECC_P256
            if ec_params == SM2_EC_PARAMS:
                if self.sm2 is None:
                    raise NotSupportedByToken(
                        "the key is an SM2 key, but no vendor SM2 mechanisms are configured "
                        "(see docs/pkcs11.md)"
                    )
                return Algorithm.SM2
            raise UnsupportedAlgorithm("the key is on an EC curve other than P-256 and SM2")
        if key_type == _Ckk.RSA:
            return Algorithm.RSA2048
        raise UnsupportedAlgorithm(f"the key's type 0x{key_type:X} is not EC, RSA or SM2")

    def _spki(self, handle: Any, algorithm: Algorithm) -> bytes:
        try:
            if algorithm is Algorithm.RSA2048:
                n, e = self._attrs(handle, [_Cka.MODULUS, _Cka.PUBLIC_EXPONENT])
                key = _rsa.RSAPublicNumbers(
                    int.from_bytes(bytes(e), "big"), int.from_bytes(bytes(n), "big")
                ).public_key()
                if key.key_size != 2048:
                    raise UnsupportedAlgorithm(
                        f"the key is RSA-{key.key_size}: this backend handles RSA-2048"
                    )
                return key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            (raw,) = self._attrs(handle, [_Cka.EC_POINT])
            point = _ec_point(bytes(raw))
            if algorithm is Algorithm.SM2:
                return sm2.public_key_from_bytes(point).to_der()
            p256 = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
            return p256.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except (ValueError, TypeError):
            raise EncodingError("the token returned a malformed public key") from None

    def _key(self, container: str) -> _Key:
        """The private key of ``container`` (cached; the user must be logged in on most
        tokens), with its public key from the public-key object or the certificate."""
        cached = self._keys.get(container)
        if cached is not None:
            return cached
        selector = self._selector(container)
        found = self._find([(_Cka.CLASS, _Cko.PRIVATE_KEY), selector])
        if not found:
            raise ContainerNotFound(
                f"no private key {container!r} on the token (log in first: private keys are "
                "hidden until the user PIN is verified)"
            )
        if len(found) > 1:
            raise ContainerNotFound(
                f"{len(found)} private keys match {container!r}: address one by id:<hex>"
            )
        handle = found[0]
        label, key_id, always = self._attrs(handle, [_Cka.LABEL, _Cka.ID, _Cka.ALWAYS_AUTHENTICATE])
        key_id = bytes(key_id) if key_id is not None else b""
        algorithm = self._algorithm_of(handle)
        spki = self._public_spki(key_id, str(label or ""), algorithm, handle)
        key = _Key(handle, str(label or ""), key_id, algorithm, spki, always is True)
        self._keys[container] = key
        return key

    def _public_spki(self, key_id: bytes, label: str, algorithm: Algorithm, priv: Any) -> bytes:
        sel: tuple[int, object] = (_Cka.ID, key_id) if key_id else (_Cka.LABEL, label)
        pubs = self._find([(_Cka.CLASS, _Cko.PUBLIC_KEY), sel])
        if pubs:
            return self._spki(pubs[0], algorithm)
        certs = self._find([(_Cka.CLASS, _Cko.CERTIFICATE), sel])
        if certs:
            (der,) = self._attrs(certs[0], [_Cka.VALUE])
            return keys.public_key_to_spki(x509.load_certificate(bytes(der)).public_key)
        if algorithm is Algorithm.RSA2048:  # many tokens expose n and e on the private key
            return self._spki(priv, algorithm)
        raise ContainerNotFound(
            "the token shows no public key or certificate for this key: import its certificate"
        )

    def list_containers(self) -> list[ContainerInfo]:
        """Private keys (after login) and, before login, public keys: one entry per key,
        named by label (``id:<hex>`` when it has none)."""
        out: dict[bytes | str, ContainerInfo] = {}
        cert_ids = set()
        for cert in self.find_certificates():
            cert_ids.add(cert.id)
        for cls in (_Cko.PRIVATE_KEY, _Cko.PUBLIC_KEY):
            for handle in self._find([(_Cka.CLASS, cls)]):
                label, key_id = self._attrs(handle, [_Cka.LABEL, _Cka.ID])
                key_id = bytes(key_id) if key_id is not None else b""
                ident: bytes | str = key_id or str(label or "")
                if ident in out:
                    continue
                try:
                    algorithm = self._algorithm_of(handle)
                except EbankAuthError as exc:
                    _log.debug("skipping a key the backend does not handle: %s", exc)
                    continue
                name = str(label or "") or f"id:{key_id.hex()}"
                out[ident] = ContainerInfo(
                    name, algorithm, ContainerUsage.LOGIN, bool(key_id) and key_id in cert_ids
                )
        return list(out.values())

    def generate_key(
        self,
        container: str = DEFAULT_LOGIN_CONTAINER,
        algorithm: Algorithm = Algorithm.ECC_P256,
        usage: ContainerUsage = ContainerUsage.LOGIN,
        *,
        replace: bool = False,
    ) -> PublicKeyInfo:
        """``C_GenerateKeyPair`` on the token: a sensitive, non-extractable private key and
        its public key, both labelled ``container`` with a fresh random ``CKA_ID``.  A label
        that names a key is refused unless ``replace=True`` (which destroys the old key pair
        and its certificate first).  The user must be logged in."""
        if usage is not ContainerUsage.LOGIN:
            raise NotSupportedByToken(
                "a PKCS#11 key signs whatever the host sends: it cannot be a transaction "
                "(confirm-and-sign) key; use usage LOGIN"
            )
        if (
            not isinstance(container, str)
            or not 0 < len(container) <= _MAX_LABEL
            or not container.isprintable()
            or container.lower().startswith("id:")
        ):
            raise InvalidInput(f"a new key's label is 1-{_MAX_LABEL} printable characters")
        if algorithm is Algorithm.SM2 and self.sm2 is None:
            raise NotSupportedByToken(
                "PKCS#11 has no standard SM2 mechanism and none is configured for this module: "
                "give the vendor's SM2 numbers (Sm2Mechanisms / sm2 config, see docs/pkcs11.md)"
            )
        existing = self._find([(_Cka.CLASS, _Cko.PRIVATE_KEY), (_Cka.LABEL, container)])
        existing += self._find([(_Cka.CLASS, _Cko.PUBLIC_KEY), (_Cka.LABEL, container)])
        if existing and not replace:
            raise KeyAlreadyExists(
                f"the token already holds a key labelled {container!r}: pass replace=True "
                "(--force) to overwrite it"
            )
        key_id = secrets.token_bytes(16)
        common: list[tuple[int, object]] = [
            (_Cka.TOKEN, True),
            (_Cka.ID, key_id),
            (_Cka.LABEL, container),
        ]
        public: list[tuple[int, object]] = [(_Cka.CLASS, _Cko.PUBLIC_KEY), (_Cka.VERIFY, True)]
        private: list[tuple[int, object]] = [
            (_Cka.CLASS, _Cko.PRIVATE_KEY),
            (_Cka.SIGN, True),
            (_Cka.PRIVATE, True),
            (_Cka.SENSITIVE, True),
            (_Cka.EXTRACTABLE, False),
        ]
        mech: int
        if algorithm is Algorithm.ECC_P256:
            mech = _Ckm.EC_KEY_PAIR_GEN
            public += [(_Cka.KEY_TYPE, _Ckk.EC), (_Cka.EC_PARAMS, P256_EC_PARAMS)]
            private += [(_Cka.KEY_TYPE, _Ckk.EC)]
        elif algorithm is Algorithm.RSA2048:
            mech = _Ckm.RSA_PKCS_KEY_PAIR_GEN
            public += [
                (_Cka.KEY_TYPE, _Ckk.RSA),
                (_Cka.MODULUS_BITS, 2048),
                (_Cka.PUBLIC_EXPONENT, b"\x01\x00\x01"),
            ]
            private += [(_Cka.KEY_TYPE, _Ckk.RSA)]
        elif algorithm is Algorithm.SM2 and self.sm2 is not None:
            mech = self.sm2.keygen
            public += [(_Cka.KEY_TYPE, self.sm2.key_type), (_Cka.EC_PARAMS, self.sm2.ec_params)]
            private += [(_Cka.KEY_TYPE, self.sm2.key_type)]
        else:
            raise UnsupportedAlgorithm("PKCS#11 keys here are ECC_P256, RSA2048 or SM2")
        what = f"generating an {algorithm.name} key"
        if existing:
            self._destroy_container(container)
        with self._calling(what):
            pub, _priv = self._session.generateKeyPair(
                common + public, common + private, self._p11.Mechanism(mech)
            )
        self._keys.clear()
        spki = self._spki(pub, algorithm)
        return PublicKeyInfo(container, algorithm, ContainerUsage.LOGIN, spki)

    def _destroy_container(self, label: str) -> None:
        ids = set()
        for cls in (_Cko.PRIVATE_KEY, _Cko.PUBLIC_KEY):
            for handle in self._find([(_Cka.CLASS, cls), (_Cka.LABEL, label)]):
                (key_id,) = self._attrs(handle, [_Cka.ID])
                if key_id:
                    ids.add(bytes(key_id))
                with self._calling("removing the old key"):
                    self._session.destroyObject(handle)
        for key_id in ids:
            for handle in self._find([(_Cka.CLASS, _Cko.CERTIFICATE), (_Cka.ID, key_id)]):
                with self._calling("removing the old certificate"):
                    self._session.destroyObject(handle)
        self._keys.clear()

    def attest_key(self, container: str = DEFAULT_CONTAINER) -> KeyAttestation:
        raise NotSupportedByToken(
            "PKCS#11 has no standard key attestation: use the vendor's attestation tool"
        )

    def public_key(self, container: str = DEFAULT_LOGIN_CONTAINER) -> PublicKeyInfo:
        """The key's public key: from the private key's partner (login needed on most
        tokens), or — before login — from the public-key object or certificate."""
        try:
            key = self._key(container)
            return PublicKeyInfo(
                key.label or container, key.algorithm, ContainerUsage.LOGIN, key.spki
            )
        except ContainerNotFound:
            selector = self._selector(container)
            pubs = self._find([(_Cka.CLASS, _Cko.PUBLIC_KEY), selector])
            if pubs:
                algorithm = self._algorithm_of(pubs[0])
                return PublicKeyInfo(
                    container, algorithm, ContainerUsage.LOGIN, self._spki(pubs[0], algorithm)
                )
            raise

    # -- certificates -----------------------------------------------------------------------
    def find_certificates(
        self, *, id: bytes | None = None, label: str | None = None
    ) -> list[Pkcs11Certificate]:
        """X.509 certificate objects, all or those with the given ``CKA_ID`` / ``CKA_LABEL``."""
        template: list[tuple[int, object]] = [
            (_Cka.CLASS, _Cko.CERTIFICATE),
            (_Cka.CERTIFICATE_TYPE, _CKC_X_509),
        ]
        if id is not None:
            template.append((_Cka.ID, bytes(id)))
        if label is not None:
            template.append((_Cka.LABEL, label))
        out = []
        for handle in self._find(template):
            cert_label, cert_id, der = self._attrs(handle, [_Cka.LABEL, _Cka.ID, _Cka.VALUE])
            out.append(
                Pkcs11Certificate(
                    str(cert_label or ""),
                    bytes(cert_id) if cert_id is not None else b"",
                    bytes(der) if der is not None else b"",
                )
            )
        return out

    def import_certificate(
        self, certificate: bytes, container: str = DEFAULT_LOGIN_CONTAINER
    ) -> None:
        """Store ``certificate`` (DER or PEM) as an X.509 object with the ``CKA_ID`` and
        label of ``container``'s key, replacing the certificate it had.  A certificate for
        another key is refused (:class:`InvalidInput`).  The user must be logged in."""
        cert = x509.load_certificate(certificate)
        key = self._key(container)
        if keys.public_key_to_spki(cert.public_key) != key.spki:
            raise InvalidInput(
                f"the certificate {cert.subject!r} is for another key than {container!r}: "
                "import the certificate issued for this key"
            )
        der = cert.to_der()
        tbs = a_x509.Certificate.load(der)["tbs_certificate"]
        template: list[tuple[int, object]] = [
            (_Cka.CLASS, _Cko.CERTIFICATE),
            (_Cka.CERTIFICATE_TYPE, _CKC_X_509),
            (_Cka.TOKEN, True),
            (_Cka.PRIVATE, False),
            (_Cka.LABEL, key.label or container),
            (_Cka.ID, key.id),
            (_Cka.SUBJECT, tbs["subject"].dump()),
            (_Cka.ISSUER, tbs["issuer"].dump()),
            (_Cka.SERIAL_NUMBER, tbs["serial_number"].dump()),
            (_Cka.VALUE, der),
        ]
        old = self._find([(_Cka.CLASS, _Cko.CERTIFICATE), (_Cka.ID, key.id)]) if key.id else []
        with self._calling("storing the certificate"):
            self._session.createObject(template)
            for handle in old:
                self._session.destroyObject(handle)

    def export_certificate(self, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """The DER certificate of ``container`` (by its key's ``CKA_ID``, or the
        certificate's own label / ``id:<hex>`` when no key is visible)."""
        attr, value = self._selector(container)
        if isinstance(value, bytes):
            certs = self.find_certificates(id=value)
        else:
            certs = self.find_certificates(label=str(value))
        if not certs and attr == _Cka.LABEL:
            try:
                key = self._key(container)
            except ContainerNotFound:
                key = None
            if key is not None and key.id:
                certs = self.find_certificates(id=key.id)
        if not certs:
            raise ContainerNotFound(f"the token holds no certificate for {container!r}")
        return certs[0].der

    # -- signing ----------------------------------------------------------------------------
    def sign_digest(self, digest: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """Sign a 32-byte digest: SHA-256 for P-256 (ECDSA, DER) and RSA (PKCS#1 v1.5); for
        SM2 the ``e = SM3(Z ‖ M)`` of the token protocol (needs ``sign_input = digest``)."""
        digest = bytes(digest)
        if len(digest) != 32:
            raise EncodingError("a digest here is 32 bytes (SHA-256, or SM2's e)")
        key = self._key(container)
        if key.algorithm is Algorithm.ECC_P256:
            raw = self._sign(key, digest, self._mech_ecdsa)
            return _rs_to_der(raw, 32)
        if key.algorithm is Algorithm.RSA2048:
            return self._sign(key, _SHA256_DIGEST_INFO + digest, self._mech_rsa)
        sm2_mech = self._sm2()
        if sm2_mech.sign_input is not Sm2SignInput.DIGEST:
            raise NotSupportedByToken(
                "the configured SM2 mechanism hashes the message itself: use sign_message"
            )
        return _sm2_signature(self._sign(key, digest, self._p11.Mechanism(sm2_mech.sign)))

    def sign_message(self, data: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """Sign ``data``: ECDSA-SHA256 / SHA256-RSA (hashed here), SM2-with-SM3 with the
        default ID (by the token, or ``e`` computed here — see :class:`Sm2SignInput`)."""
        data = bytes(data)
        key = self._key(container)
        if key.algorithm is not Algorithm.SM2:
            return self.sign_digest(hashlib.sha256(data).digest(), container)
        sm2_mech = self._sm2()
        if sm2_mech.sign_input is Sm2SignInput.DIGEST:
            public = sm2.load_der_public_key(key.spki)
            return self.sign_digest(sm2.compute_e(public, data), container)
        return _sm2_signature(self._sign(key, data, self._p11.Mechanism(sm2_mech.sign)))

    def _sm2(self) -> Sm2Mechanisms:
        if self.sm2 is None:
            raise NotSupportedByToken("no vendor SM2 mechanisms are configured (docs/pkcs11.md)")
        return self.sm2

    def _sign(self, key: _Key, data: bytes, mechanism: Any) -> bytes:
        if key.always_authenticate:
            raise NotSupportedByToken(
                f"the key {key.label or key.id.hex()!r} asks for the PIN before every signature "
                "(CKA_ALWAYS_AUTHENTICATE, e.g. PIV slot 9C): this backend does not keep the "
                "PIN to answer it; use a key without that policy (e.g. PIV 9A)"
            )
        if self._closed:
            raise InvalidInput("this PKCS#11 token session was closed: open the token again")
        try:  # the hot path: no context manager, the message is built only on failure
            return bytes(self._session.sign(key.handle, data, mechanism))
        except self._p11.PyKCS11Error as exc:
            raise self._error(exc, f"signing with {key.label or 'the key'}") from None

    def confirm_and_sign(
        self,
        tx: Transaction,
        container: str = DEFAULT_CONTAINER,
        lang: str = "zh",
        *,
        verify_with: TokenPublicKey | None = None,
    ) -> SignResult:
        raise NotSupportedByToken(
            "a PKCS#11 token shows nothing to the customer (PKCS#11 has no display and no "
            "button): it cannot confirm a transaction; use a token with a display (the native "
            "backend)"
        )

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._keys.clear()
        try:
            self._session.closeSession()
        except self._p11.PyKCS11Error as exc:
            _log.debug("closing the PKCS#11 session: %s", exc)
        finally:
            if self._owns_module:
                self.module.close()

    def __enter__(self) -> Pkcs11Token:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ec_point(raw: bytes) -> bytes:
    """``CKA_EC_POINT`` is a DER OCTET STRING around ``04 ‖ X ‖ Y``; some modules send the
    bare point."""
    if len(raw) >= 2 and raw[0] == 0x04 and raw[1] == len(raw) - 2 and raw[1] in (65, 33):
        return raw[2:]
    if len(raw) >= 3 and raw[0] == 0x04 and raw[1] == 0x81 and raw[2] == len(raw) - 3:
        return raw[3:]
    return raw


def _rs_to_der(raw: bytes, size: int) -> bytes:
    if len(raw) != 2 * size:
        raise EncodingError(f"the token's signature is {len(raw)} bytes, not r ‖ s")
    r = int.from_bytes(raw[:size], "big")
    s = int.from_bytes(raw[size:], "big")
    return encode_dss_signature(r, s)


def _sm2_signature(raw: bytes) -> bytes:
    if len(raw) == 64:
        return sm2.signature_from_rs(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
    sm2.signature_to_rs(raw)  # DER already: check it
    return raw


class Pkcs11SigningKey:
    """A PKCS#11 key as a :class:`ebank_auth.crypto.keys.SigningKey` (CSR, certificates,
    CMS): ECDSA-SHA256 for P-256, SHA256-RSA (PKCS#1 v1.5) for RSA, SM2-with-SM3 for SM2.
    The user PIN must be verified first."""

    def __init__(self, token: Pkcs11Token, container: str = DEFAULT_LOGIN_CONTAINER) -> None:
        self._token = token
        self._container = container
        self._info = token.public_key(container)
        self._public = self._info.any_public_key()
        self._algorithm = {
            Algorithm.ECC_P256: SignatureAlgorithm.ECDSA_SHA256,
            Algorithm.RSA2048: SignatureAlgorithm.SHA256_RSA,
            Algorithm.SM2: SignatureAlgorithm.SM2_SM3,
        }[self._info.algorithm]

    def public_key(self) -> PublicKey:
        return self._public

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        if algorithm is not self._algorithm:
            raise UnsupportedAlgorithm(f"this PKCS#11 key signs with {self._algorithm.name} only")
        return self._token.sign_message(bytes(data), self._container)


def open_pkcs11(
    module: str | os.PathLike[str],
    slot: int | str | None = None,
    *,
    sm2: Sm2Mechanisms | None = None,
    max_pin_retries: int = DEFAULT_RETRY_LIMIT,
) -> Pkcs11Token:
    """Load the PKCS#11 ``module`` and open a session with the token in ``slot`` (a slot id,
    a token label, or ``None`` for the first initialised token).  Closing the token unloads
    the module."""
    mod = Pkcs11Module(module)
    try:
        return Pkcs11Token(
            mod,
            mod.find_slot(slot),
            sm2=sm2,
            max_pin_retries=max_pin_retries,
            owns_module=True,
        )
    except BaseException:
        mod.close()
        raise
