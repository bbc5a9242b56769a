"""SKF backend: a token reached through its vendor's GM/T 0016 (SKF) shared library.

::

    from ebank_auth.usbkey.vendor.skf import open_skf

    with open_skf("/opt/vendor/lib/libskf.so") as token:       # first device, its application
        token.verify_pin("12345678")
        info = token.generate_key("login")                      # SM2, SKF_GenECCKeyPair
        signature = token.sign_message(b"data", "login")       # DER SEQUENCE{r, s}
        info.public_key().verify(signature, b"data")

The library is loaded with cffi in ABI mode (``ffi.dlopen``), as the SM2 backend loads
libcrypto: no compiler at install time, C declarations checked by cffi at every call (a wrong
argument type raises ``TypeError`` instead of corrupting memory, which ctypes would let
through), and a call costs less than through ctypes.

:class:`SkfToken` implements :class:`ebank_auth.usbkey.token.Token` where SKF fits: PIN
verify/change/unblock with the retry count the library reports, containers, SM2 key
generation (``SGD_SM2_1``), signing, public-key and certificate export and import, random
bytes.  The host computes ``e = SM3(Z || M)`` (GM/T 0003 with the default ID
``1234567812345678``) and the library signs ``e`` with ``SKF_ECCSignData``, which is how
GM/T 0016 splits the work; :meth:`SkfToken.digest` lets the library compute ``e`` instead
(``SKF_DigestInit`` with the public key and ID).  What SKF cannot do raises
:class:`~ebank_auth.errors.NotSupportedByToken`: confirm-and-sign (SKF has no display and no
button — policy must never count an SKF key as "what you see is what you sign"), key
attestation, changing the retry limit.  Every SKF key is reported with usage ``LOGIN``.

Data layouts follow GM/T 0016 with its 32-bit ``ULONG``; a vendor library built with the LP64
``unsigned long`` (8 bytes) is opened with ``ulong_bits=64``.  ``DEVINFO`` is read with the
natural C layout into an oversized buffer, so a library with another layout cannot write past
it.  Handles are not shared between threads: use one :class:`SkfToken` per thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ebank_auth.crypto import sm2, sm3, x509
from ebank_auth.crypto.keys import PublicKey, SignatureAlgorithm, SigningKey
from ebank_auth.errors import (
    CardNotPresent,
    CertificateValidationError,
    ConfigurationError,
    CryptoError,
    EbankAuthError,
    EncodingError,
    InvalidKey,
    KeyAlreadyExists,
    NotSupportedByToken,
    PinIncorrect,
    PinLocked,
    PinPolicyError,
    ReaderNotFound,
    SecurityStatusNotSatisfied,
    SkfError,
    SkfLibraryError,
    UnsupportedAlgorithm,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.key_attestation import KeyAttestation
from ebank_auth.usbkey.protocol import (
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    Algorithm,
    ContainerUsage,
    DeviceCapability,
    DeviceInfo,
    PinRef,
    check_pin_complexity,
    pin_bytes,
)
from ebank_auth.usbkey.token import (
    AttestationReport,
    ContainerInfo,
    PinStatus,
    PublicKeyInfo,
    SignResult,
    Token,
    TokenPublicKey,
)
from ebank_auth.usbkey.vendor.skf_constants import (
    ECC_SIGNATURE_BLOB_SIZE,
    MAX_CONTAINER_NAME,
    SM2_BITS,
    AlgId,
    ContainerType,
    PinType,
    Sar,
)

__all__ = [
    "OPTIONAL_FUNCTIONS",
    "REQUIRED_FUNCTIONS",
    "SkfDeviceInfo",
    "SkfLibrary",
    "SkfSigningKey",
    "SkfToken",
    "blob_public_key",
    "open_skf",
]

_CDEF: Final = """
typedef %(ulong)s ULONG;
typedef int32_t BOOL;
typedef uint8_t BYTE;
typedef void *HANDLE;
typedef struct { BYTE major; BYTE minor; } VERSION;
typedef struct {
    VERSION Version; char Manufacturer[64]; char Issuer[64]; char Label[32];
    char SerialNumber[32]; VERSION HWVersion; VERSION FirmwareVersion;
    ULONG AlgSymCap; ULONG AlgAsymCap; ULONG AlgHashCap; ULONG DevAuthAlgId;
    ULONG TotalSpace; ULONG FreeSpace; ULONG MaxECCBufferSize; ULONG MaxBufferSize;
    BYTE Reserved[64];
} DEVINFO;
typedef struct { ULONG BitLen; BYTE XCoordinate[64]; BYTE YCoordinate[64]; } ECCPUBLICKEYBLOB;
typedef struct { BYTE r[64]; BYTE s[64]; } ECCSIGNATUREBLOB;

ULONG SKF_EnumDev(BOOL bPresent, char *szNameList, ULONG *pulSize);
ULONG SKF_ConnectDev(char *szName, HANDLE *phDev);
ULONG SKF_DisConnectDev(HANDLE hDev);
ULONG SKF_GetDevInfo(HANDLE hDev, DEVINFO *pDevInfo);
ULONG SKF_GenRandom(HANDLE hDev, BYTE *pbRandom, ULONG ulRandomLen);
ULONG SKF_EnumApplication(HANDLE hDev, char *szAppName, ULONG *pulSize);
ULONG SKF_OpenApplication(HANDLE hDev, char *szAppName, HANDLE *phApplication);
ULONG SKF_CloseApplication(HANDLE hApplication);
ULONG SKF_VerifyPIN(HANDLE hApplication, ULONG ulPINType, char *szPIN, ULONG *pulRetryCount);
ULONG SKF_ChangePIN(HANDLE hApplication, ULONG ulPINType, char *szOldPin, char *szNewPin,
                    ULONG *pulRetryCount);
ULONG SKF_GetPINInfo(HANDLE hApplication, ULONG ulPINType, ULONG *pulMaxRetryCount,
                     ULONG *pulRemainRetryCount, BOOL *pbDefaultPin);
ULONG SKF_UnblockPIN(HANDLE hApplication, char *szAdminPIN, char *szNewUserPIN,
                     ULONG *pulRetryCount);
ULONG SKF_ClearSecureState(HANDLE hApplication);
ULONG SKF_EnumContainer(HANDLE hApplication, char *szContainerName, ULONG *pulSize);
ULONG SKF_CreateContainer(HANDLE hApplication, char *szContainerName, HANDLE *phContainer);
ULONG SKF_OpenContainer(HANDLE hApplication, char *szContainerName, HANDLE *phContainer);
ULONG SKF_CloseContainer(HANDLE hContainer);
ULONG SKF_GetContainerType(HANDLE hContainer, ULONG *pulContainerType);
ULONG SKF_GenECCKeyPair(HANDLE hContainer, ULONG ulAlgId, ECCPUBLICKEYBLOB *pBlob);
ULONG SKF_ECCSignData(HANDLE hContainer, BYTE *pbData, ULONG ulDataLen,
                      ECCSIGNATUREBLOB *pSignature);
ULONG SKF_ECCVerify(HANDLE hDev, ECCPUBLICKEYBLOB *pECCPubKeyBlob, BYTE *pbData,
                    ULONG ulDataLen, ECCSIGNATUREBLOB *pSignature);
ULONG SKF_ExportPublicKey(HANDLE hContainer, BOOL bSignFlag, BYTE *pbBlob, ULONG *pulBlobLen);
ULONG SKF_ImportCertificate(HANDLE hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG ulCertLen);
ULONG SKF_ExportCertificate(HANDLE hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG *pulCertLen);
ULONG SKF_DigestInit(HANDLE hDev, ULONG ulAlgID, ECCPUBLICKEYBLOB *pPubKey, BYTE *pucID,
                     ULONG ulIDLen, HANDLE *phHash);
ULONG SKF_Digest(HANDLE hHash, BYTE *pbData, ULONG ulDataLen, BYTE *pbHashData,
                 ULONG *pulHashLen);
ULONG SKF_CloseHandle(HANDLE hHandle);
"""

#: What the backend needs: a library without one of these is refused when it is loaded.
REQUIRED_FUNCTIONS: Final = (
    "SKF_EnumDev",
    "SKF_ConnectDev",
    "SKF_DisConnectDev",
    "SKF_GetDevInfo",
    "SKF_EnumApplication",
    "SKF_OpenApplication",
    "SKF_CloseApplication",
    "SKF_VerifyPIN",
    "SKF_GetPINInfo",
    "SKF_ClearSecureState",
    "SKF_EnumContainer",
    "SKF_OpenContainer",
    "SKF_CloseContainer",
    "SKF_GenECCKeyPair",
    "SKF_ECCSignData",
    "SKF_ExportPublicKey",
    "SKF_ImportCertificate",
    "SKF_ExportCertificate",
)
#: Used when present; without them the operation raises NotSupportedByToken.
OPTIONAL_FUNCTIONS: Final = (
    "SKF_GenRandom",
    "SKF_ChangePIN",
    "SKF_UnblockPIN",
    "SKF_CreateContainer",
    "SKF_GetContainerType",
    "SKF_ECCVerify",
    "SKF_DigestInit",
    "SKF_Digest",
    "SKF_CloseHandle",
)
_DEVINFO_BUFFER: Final = 1024  # larger than any DEVINFO layout
_MAX_LIST: Final = 1 << 16  # largest name list accepted from a library
_MAX_CERT: Final = 1 << 16
_FIRST_CERT_BUFFER: Final = 4096  # most certificates fit: one call instead of two
_SM2_ALGORITHMS: Final = AlgId.SM2_1 | AlgId.SM2_3
_DEFAULT_UID: Final = sm2.DEFAULT_UID

_ffi_lock = threading.Lock()
_ffis: dict[int, Any] = {}


def _ffi(ulong_bits: int) -> Any:
    if ulong_bits not in (32, 64):
        raise ConfigurationError("ulong_bits is 32 (GM/T 0016's ULONG) or 64 (LP64 unsigned long)")
    with _ffi_lock:
        ffi = _ffis.get(ulong_bits)
        if ffi is None:
            from cffi import FFI

            ffi = FFI()
            ffi.cdef(_CDEF % {"ulong": "uint32_t" if ulong_bits == 32 else "uint64_t"})
            _ffis[ulong_bits] = ffi
        return ffi


# What each SAR code means for the caller: the error class and what to do.
_SAR_ERRORS: Final[dict[int, tuple[type[EbankAuthError], str]]] = {
    Sar.USER_NOT_LOGGED_IN: (SecurityStatusNotSatisfied, "verify the user PIN first"),
    Sar.DEVICE_REMOVED: (CardNotPresent, "the token was removed: plug it in and open it again"),
    Sar.PIN_LOCKED: (PinLocked, ""),
    Sar.PIN_LEN_RANGE: (PinPolicyError, "the PIN's length is outside what the token accepts"),
    Sar.PIN_INVALID: (PinPolicyError, "the token refuses this PIN's characters"),
    Sar.NOTSUPPORTYETERR: (
        NotSupportedByToken,
        "the SKF library does not support this operation or algorithm",
    ),
    Sar.KEYNOTFOUNTERR: (SkfError, "the container holds no such key: generate one first"),
    Sar.CERTNOTFOUNTERR: (SkfError, "the container holds no certificate: import one first"),
    Sar.FILE_NOT_EXIST: (SkfError, "no such container: list the containers"),
    Sar.APPLICATION_NOT_EXISTS: (SkfError, "no such application: list the applications"),
    Sar.INVALIDHANDLEERR: (
        SkfError,
        "the library no longer knows the handle: open the token again",
    ),
}


def _sar_name(code: int) -> str:
    try:
        return f"SAR_{Sar(code).name}"
    except ValueError:
        return "unknown SAR code"


def _error(function: str, code: int) -> EbankAuthError:
    """The typed error for ``code`` returned by ``function`` (never for SAR_PIN_INCORRECT)."""
    cls, hint = _SAR_ERRORS.get(code, (SkfError, "the token refused the operation"))
    tail = f"[{function}: {_sar_name(code)} {code:#010x}]"
    if cls is PinLocked:
        return PinLocked(f"{PinLocked.default_message} {tail}")
    message = f"{hint} {tail}"
    if issubclass(cls, SkfError):
        return cls(message, code)
    return cls(message)


def _split_names(raw: bytes) -> list[str]:
    """An SKF name list (``a\\0b\\0\\0``) as text; bytes that are not UTF-8 round-trip."""
    out = []
    for part in raw.split(b"\0"):
        if not part:
            break
        out.append(part.decode("utf-8", "surrogateescape"))
    return out


def _name_bytes(name: str, what: str) -> bytes:
    if not isinstance(name, str):
        raise EncodingError(f"the {what} name must be text")
    raw = name.encode("utf-8", "surrogateescape")
    if not 1 <= len(raw) <= MAX_CONTAINER_NAME or b"\0" in raw:
        raise EncodingError(f"an SKF {what} name is 1 to {MAX_CONTAINER_NAME} bytes, no NUL")
    return raw


def _pin(pin: str) -> bytes:
    raw = pin_bytes(pin)
    if b"\0" in raw:
        raise PinPolicyError("a PIN cannot hold a NUL character")
    return raw


def _version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _text(raw: bytes) -> str:
    raw = raw.split(b"\0", 1)[0]
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # pragma: no cover - gb18030 decodes every byte string


def blob_public_key(ffi: Any, blob: Any) -> sm2.SM2PublicKey:
    """The SM2 key in a cffi ``ECCPUBLICKEYBLOB`` (either ULONG size), checked: BitLen 256,
    zero padding, a point on the curve (else :class:`~ebank_auth.errors.InvalidKey`)."""
    if int(blob.BitLen) != SM2_BITS:
        raise InvalidKey(f"the library returned a {int(blob.BitLen)}-bit key: not SM2")
    raw = (
        SM2_BITS.to_bytes(4, "little")
        + bytes(ffi.buffer(blob.XCoordinate))
        + bytes(ffi.buffer(blob.YCoordinate))
    )
    return sm2.validate_public_key(sm2.public_key_from_skf_blob(raw))


@dataclass(frozen=True)
class SkfDeviceInfo:
    """``DEVINFO`` as the library reported it (GM/T 0016 §6.4.4)."""

    version: tuple[int, int]
    manufacturer: str
    issuer: str
    label: str
    serial: str
    hardware_version: tuple[int, int]
    firmware_version: tuple[int, int]
    sym_algorithms: int
    asym_algorithms: int
    hash_algorithms: int
    total_space: int
    free_space: int

    def supports(self, algorithm: AlgId) -> bool:
        """Whether the capability bits name ``algorithm`` (e.g. ``AlgId.SM2_1``)."""
        if algorithm is AlgId.SM3 or algorithm in (AlgId.SHA1, AlgId.SHA256):
            return bool(self.hash_algorithms & algorithm)
        if algorithm >= AlgId.RSA:
            return self.asym_algorithms & algorithm == algorithm
        return self.sym_algorithms & algorithm == algorithm


class SkfLibrary:
    """A vendor's SKF shared library, loaded and checked for the functions the backend needs.

    Raises :class:`~ebank_auth.errors.SkfLibraryError` for a wrong path, a file that is not a
    shared library, or a library missing any of :data:`REQUIRED_FUNCTIONS`."""

    def __init__(self, path: str | os.PathLike[str], *, ulong_bits: int = 32) -> None:
        self.path = os.fspath(path)
        self.ulong_bits = ulong_bits
        self.ffi = _ffi(ulong_bits)
        if os.sep in self.path and not os.path.isfile(self.path):
            raise SkfLibraryError(
                f"no SKF library at {self.path!r}: give the path of your token vendor's SKF "
                "shared library (e.g. /usr/lib/libskf.so)"
            )
        try:
            self.lib = self.ffi.dlopen(self.path)
        except OSError as exc:
            raise SkfLibraryError(
                f"{self.path!r} cannot be loaded as a shared library ({exc}): give the vendor's "
                "SKF library built for this machine's architecture"
            ) from None
        self._functions: dict[str, Callable[..., int]] = {}
        missing = []
        for name in REQUIRED_FUNCTIONS + OPTIONAL_FUNCTIONS:
            try:
                self._functions[name] = getattr(self.lib, name)
            except AttributeError:
                if name in REQUIRED_FUNCTIONS:
                    missing.append(name)
        if missing:
            raise SkfLibraryError(
                f"{self.path!r} is not a usable SKF (GM/T 0016) library: it lacks "
                f"{', '.join(missing)}; give the vendor's SKF library, not its PKCS#11 module "
                "or another library"
            )

    def __repr__(self) -> str:
        return f"SkfLibrary({self.path!r}, ulong_bits={self.ulong_bits})"

    # ------------------------------------------------------------------ calls
    def has(self, name: str) -> bool:
        return name in self._functions

    def function(self, name: str) -> Callable[..., int]:
        """The library's function ``name``; NotSupportedByToken when it lacks an optional one."""
        fn = self._functions.get(name)
        if fn is None:
            raise NotSupportedByToken(
                f"this SKF library has no {name}: use the vendor's tool for this operation"
            )
        return fn

    def call(self, name: str, *args: Any) -> None:
        """Call ``name``; a non-zero SAR code raises its typed error."""
        code = self.function(name)(*args)
        if code:
            raise _error(name, int(code))

    def name_list(self, name: str, *args: Any) -> list[str]:
        """Call a ``(…, LPSTR list, ULONG *size)`` function with the size protocol."""
        size = self.ffi.new("ULONG *", 0)
        self.call(name, *args, self.ffi.NULL, size)
        for _ in range(3):
            if not 0 < size[0] <= _MAX_LIST:
                if size[0] == 0:
                    return []
                raise SkfError(f"{name} reported a {size[0]}-byte name list: refused")
            buf = self.ffi.new("char[]", int(size[0]))
            code = int(self.function(name)(*args, buf, size))
            if code == Sar.BUFFER_TOO_SMALL:
                continue
            if code:
                raise _error(name, code)
            return _split_names(bytes(self.ffi.buffer(buf, min(int(size[0]), len(buf)))))
        raise SkfError(f"{name} kept asking for a larger buffer", Sar.BUFFER_TOO_SMALL)

    def devices(self, present: bool = True) -> list[str]:
        """SKF_EnumDev: the names of the devices the library sees."""
        return self.name_list("SKF_EnumDev", 1 if present else 0)


class SkfToken:
    """An open SKF device and application (see the module docstring).  Get one with
    :func:`open_skf`."""

    def __init__(self, library: SkfLibrary, device: str, application: str | None = None) -> None:
        self._skf = library
        self._ffi = library.ffi
        self._device = device
        self._containers: dict[str, Any] = {}
        self._keys: dict[str, sm2.SM2PublicKey] = {}
        self._z: dict[str, bytes] = {}
        self._app: Any = None
        self._sign = library.function("SKF_ECCSignData")
        self._pin_info = library.function("SKF_GetPINInfo")
        self._cells = self._ffi.new("ULONG[2]")
        self._flag = self._ffi.new("BOOL *")
        handle = self._ffi.new("HANDLE *")
        library.call("SKF_ConnectDev", _name_bytes(device, "device"), handle)
        self._dev = handle[0]
        try:
            apps = self.applications()
            if application is None:
                if len(apps) != 1:
                    raise ConfigurationError(
                        f"the SKF device holds {len(apps)} applications ({', '.join(apps)}): "
                        "name one (application=…)"
                        if apps
                        else "the SKF device holds no application: create one with the "
                        "vendor's tool"
                    )
                application = apps[0]
            app = self._ffi.new("HANDLE *")
            library.call("SKF_OpenApplication", self._dev, _name_bytes(application, "app"), app)
            self._app = app[0]
            self._application = application
            self._info = self._read_info()
            self._attestation = AttestationReport(
                self._info.serial,
                False,
                "",
                _version(self._info.firmware_version),
                "",
                "SKF offers no device authenticity check (no device certificate): trust comes "
                "from the vendor's library and the certificates issued to the token's keys",
            )
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ identity
    @property
    def library(self) -> SkfLibrary:
        return self._skf

    @property
    def device(self) -> str:
        return self._device

    @property
    def application(self) -> str:
        return self._application

    @property
    def description(self) -> str:
        return f"skf:{self._device}/{self._application}"

    @property
    def attestation(self) -> AttestationReport | None:
        return self._attestation

    @property
    def can_confirm(self) -> bool:
        return False  # SKF has no display and no button

    def applications(self) -> list[str]:
        """SKF_EnumApplication: the applications on the device."""
        return self._skf.name_list("SKF_EnumApplication", self._dev)

    def _read_info(self) -> SkfDeviceInfo:
        buf = self._ffi.new("char[]", _DEVINFO_BUFFER)
        info = self._ffi.cast("DEVINFO *", buf)
        self._skf.call("SKF_GetDevInfo", self._dev, info)

        def raw(field: Any) -> bytes:
            return bytes(self._ffi.buffer(field))

        return SkfDeviceInfo(
            version=(info.Version.major, info.Version.minor),
            manufacturer=_text(raw(info.Manufacturer)),
            issuer=_text(raw(info.Issuer)),
            label=_text(raw(info.Label)),
            serial=_text(raw(info.SerialNumber)),
            hardware_version=(info.HWVersion.major, info.HWVersion.minor),
            firmware_version=(info.FirmwareVersion.major, info.FirmwareVersion.minor),
            sym_algorithms=int(info.AlgSymCap),
            asym_algorithms=int(info.AlgAsymCap),
            hash_algorithms=int(info.AlgHashCap),
            total_space=int(info.TotalSpace),
            free_space=int(info.FreeSpace),
        )

    def skf_device_info(self) -> SkfDeviceInfo:
        """SKF_GetDevInfo, read again."""
        self._info = self._read_info()
        return self._info

    def device_info(self) -> DeviceInfo:
        info = self._info
        caps = DeviceCapability(0)
        if info.asym_algorithms & _SM2_ALGORITHMS:
            caps |= DeviceCapability.SM2
        if info.asym_algorithms & AlgId.RSA:
            caps |= DeviceCapability.RSA2048
        return DeviceInfo(
            serial=info.serial,
            label=info.label,
            manufacturer=info.manufacturer,
            firmware_version=_version(info.firmware_version),
            firmware_hash=b"",
            capabilities=caps,
            protocol_version=0,
        )

    def attest(self) -> AttestationReport:
        return self._attestation

    def random(self, length: int) -> bytes:
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 255:
            raise EncodingError("ask for 1 to 255 random bytes")
        buf = self._ffi.new("BYTE[]", length)
        self._skf.call("SKF_GenRandom", self._dev, buf, length)
        return bytes(self._ffi.buffer(buf))

    # ------------------------------------------------------------------ PIN
    @staticmethod
    def _pin_type(ref: PinRef) -> int:
        return PinType.USER if PinRef(ref) is PinRef.USER else PinType.ADMIN

    def _pin_call(self, name: str, *args: Any) -> None:
        retry = self._ffi.new("ULONG *", 0)
        code = int(self._skf.function(name)(self._app, *args, retry))
        if code == Sar.PIN_INCORRECT:
            raise PinIncorrect(int(retry[0]))
        if code:
            raise _error(name, code)

    def verify_pin(self, pin: str, ref: PinRef = PinRef.USER) -> None:
        """SKF_VerifyPIN: wrong → :class:`PinIncorrect` with the tries the library reports
        left, locked → :class:`PinLocked`."""
        self._pin_call("SKF_VerifyPIN", self._pin_type(ref), _pin(pin))

    def change_pin(self, old: str, new: str, ref: PinRef = PinRef.USER) -> None:
        """SKF_ChangePIN; the new PIN must meet the complexity rules (UK-4) first."""
        check_pin_complexity(new)
        self._pin_call("SKF_ChangePIN", self._pin_type(ref), _pin(old), _pin(new))

    def unblock_pin(self, admin_pin: str, new_user_pin: str) -> None:
        """SKF_UnblockPIN: the admin (SO) PIN sets a new user PIN and resets its counter."""
        check_pin_complexity(new_user_pin)
        self._pin_call("SKF_UnblockPIN", _pin(admin_pin), _pin(new_user_pin))

    def pin_status(self, ref: PinRef = PinRef.USER) -> PinStatus:
        """SKF_GetPINInfo: maximum and remaining tries."""
        cells, default = self._cells, self._flag
        cells[0] = cells[1] = default[0] = 0
        code = self._pin_info(self._app, self._pin_type(ref), cells, cells + 1, default)
        if code:
            raise _error("SKF_GetPINInfo", int(code))
        return PinStatus(PinRef(ref), int(cells[0]), int(cells[1]))

    def set_retry_limit(self, limit: int, ref: PinRef = PinRef.USER) -> None:
        raise NotSupportedByToken(
            "SKF sets the PIN retry limits when the application is created "
            "(SKF_CreateApplication): use the vendor's tool"
        )

    def logout(self) -> None:
        """SKF_ClearSecureState: forget the verified PINs."""
        self._skf.call("SKF_ClearSecureState", self._app)

    # ------------------------------------------------------------------ containers
    def containers(self) -> list[str]:
        """SKF_EnumContainer: every container name, whatever it holds."""
        return self._skf.name_list("SKF_EnumContainer", self._app)

    def _container(self, name: str, *, create: bool = False) -> Any:
        handle = self._containers.get(name)
        if handle is not None:
            return handle
        raw = _name_bytes(name, "container")
        out = self._ffi.new("HANDLE *")
        if create and name not in self.containers():
            self._skf.call("SKF_CreateContainer", self._app, raw, out)
        else:
            self._skf.call("SKF_OpenContainer", self._app, raw, out)
        self._containers[name] = out[0]
        return out[0]

    def _container_type(self, name: str) -> ContainerType:
        if self._skf.has("SKF_GetContainerType"):
            kind = self._ffi.new("ULONG *", 0)
            self._skf.call("SKF_GetContainerType", self._container(name), kind)
            try:
                return ContainerType(int(kind[0]))
            except ValueError:
                return ContainerType.EMPTY
        try:
            self.sm2_public_key(name)
        except SkfError:
            return ContainerType.EMPTY
        return ContainerType.ECC

    def _has_certificate(self, name: str) -> bool:
        size = self._ffi.new("ULONG *", 0)
        code = int(
            self._skf.function("SKF_ExportCertificate")(
                self._container(name), 1, self._ffi.NULL, size
            )
        )
        if code in (Sar.CERTNOTFOUNTERR, Sar.FILE_NOT_EXIST, Sar.KEYNOTFOUNTERR):
            return False
        if code:
            raise _error("SKF_ExportCertificate", code)
        return int(size[0]) > 0

    def list_containers(self) -> list[ContainerInfo]:
        """The containers holding an SM2 signing key (RSA and empty containers are left out:
        this backend signs with SM2)."""
        out = []
        for name in self.containers():
            if self._container_type(name) is ContainerType.ECC:
                out.append(
                    ContainerInfo(
                        name, Algorithm.SM2, ContainerUsage.LOGIN, self._has_certificate(name)
                    )
                )
        return out

    # ------------------------------------------------------------------ keys
    def _remember(self, name: str, key: sm2.SM2PublicKey) -> None:
        self._keys[name] = key
        self._z[name] = sm2.compute_z(key, _DEFAULT_UID)

    def sm2_public_key(self, container: str = DEFAULT_LOGIN_CONTAINER) -> sm2.SM2PublicKey:
        """SKF_ExportPublicKey of the signing key (read once, then cached)."""
        key = self._keys.get(container)
        if key is not None:
            return key
        handle = self._container(container)
        blob = self._ffi.new("ECCPUBLICKEYBLOB *")
        size = self._ffi.new("ULONG *", self._ffi.sizeof("ECCPUBLICKEYBLOB"))
        self._skf.call("SKF_ExportPublicKey", handle, 1, self._ffi.cast("BYTE *", blob), size)
        if size[0] != self._ffi.sizeof("ECCPUBLICKEYBLOB"):
            raise SkfError(
                f"SKF_ExportPublicKey returned {size[0]} bytes, not an ECCPUBLICKEYBLOB "
                f"({self._ffi.sizeof('ECCPUBLICKEYBLOB')}): an RSA container, or a library "
                "with another ULONG size (ulong_bits)"
            )
        key = blob_public_key(self._ffi, blob)
        self._remember(container, key)
        return key

    def public_key(self, container: str = DEFAULT_CONTAINER) -> PublicKeyInfo:
        key = self.sm2_public_key(container)
        return PublicKeyInfo(container, Algorithm.SM2, ContainerUsage.LOGIN, key.to_der())

    def generate_key(
        self,
        container: str = DEFAULT_LOGIN_CONTAINER,
        algorithm: Algorithm = Algorithm.SM2,
        usage: ContainerUsage = ContainerUsage.LOGIN,
        *,
        replace: bool = False,
    ) -> PublicKeyInfo:
        """SKF_GenECCKeyPair (``SGD_SM2_1``) in ``container``, created when missing (user PIN
        verified first).  A container that holds a key is refused unless ``replace=True``;
        who may replace it is then the library's own rule."""
        if usage is not ContainerUsage.LOGIN:
            raise NotSupportedByToken(
                "an SKF key signs whatever the host sends: it cannot be a transaction "
                "(confirm-and-sign) key; use usage LOGIN"
            )
        if algorithm is not Algorithm.SM2:
            raise UnsupportedAlgorithm(f"this SKF backend generates SM2 keys, not {algorithm.name}")
        _name_bytes(container, "container")
        if (
            not replace
            and container in self.containers()
            and self._container_type(container) is not ContainerType.EMPTY
        ):
            raise KeyAlreadyExists(
                f"SKF container {container!r} already holds a key: pass replace=True "
                "(--force) to overwrite it, or choose another container"
            )
        handle = self._container(container, create=True)
        blob = self._ffi.new("ECCPUBLICKEYBLOB *")
        self._keys.pop(container, None)
        self._z.pop(container, None)
        self._skf.call("SKF_GenECCKeyPair", handle, int(AlgId.SM2_1), blob)
        key = blob_public_key(self._ffi, blob)
        self._remember(container, key)
        return PublicKeyInfo(container, Algorithm.SM2, ContainerUsage.LOGIN, key.to_der())

    def attest_key(self, container: str = DEFAULT_CONTAINER) -> KeyAttestation:
        raise NotSupportedByToken(
            "SKF has no key attestation: a key's origin cannot be proven through SKF"
        )

    # ------------------------------------------------------------------ certificates
    def import_certificate(self, certificate: bytes, container: str = DEFAULT_CONTAINER) -> None:
        """SKF_ImportCertificate (signing certificate).  Refused unless the certificate
        certifies the container's key."""
        cert = x509.load_certificate(certificate)
        key = self.sm2_public_key(container)
        if cert.public_key != key:
            raise CertificateValidationError(
                f"the certificate is for another key than container {container!r} holds: "
                "import the certificate issued for this container's key",
                reason="key-mismatch",
            )
        der = cert.to_der()
        self._skf.call("SKF_ImportCertificate", self._container(container), 1, der, len(der))

    def export_certificate(self, container: str = DEFAULT_CONTAINER) -> bytes:
        """SKF_ExportCertificate (signing certificate, DER)."""
        handle = self._container(container)
        size = self._ffi.new("ULONG *", _FIRST_CERT_BUFFER)
        export = self._skf.function("SKF_ExportCertificate")
        for attempt in range(4):
            if attempt and not 0 < size[0] <= _MAX_CERT:
                raise SkfError(f"SKF_ExportCertificate reported a {size[0]}-byte certificate")
            buf = self._ffi.new("BYTE[]", int(size[0]))
            code = int(export(handle, 1, buf, size))
            if code == Sar.BUFFER_TOO_SMALL:
                continue
            if code:
                raise _error("SKF_ExportCertificate", code)
            return bytes(self._ffi.buffer(buf, min(int(size[0]), len(buf))))
        raise SkfError("SKF_ExportCertificate kept asking for a larger buffer")

    # ------------------------------------------------------------------ signing
    def sign_digest(self, digest: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """SKF_ECCSignData over a 32-byte ``e = SM3(Z || M)``; DER ``SEQUENCE{r, s}``."""
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
            raise EncodingError("an SKF SM2 signature is over a 32-byte e = SM3(Z || M)")
        handle = self._containers.get(container)
        if handle is None:
            handle = self._container(container)
        sig = self._ffi.new("ECCSIGNATUREBLOB *")
        code = self._sign(handle, bytes(digest), 32, sig)
        if code:
            raise _error("SKF_ECCSignData", int(code))
        try:
            return sm2.signature_from_skf_blob(
                bytes(self._ffi.buffer(sig, ECC_SIGNATURE_BLOB_SIZE))
            )
        except CryptoError:
            raise SkfError(
                "the SKF library returned a malformed ECCSIGNATUREBLOB (padding or r, s out of "
                "range): the library or token is faulty"
            ) from None

    def e(self, data: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """``e = SM3(Z || data)`` for the container's key with the default ID, on the host."""
        z = self._z.get(container)
        if z is None:
            self.sm2_public_key(container)
            z = self._z[container]
        return sm3.digest(z + bytes(data))

    def sign_message(self, data: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """SM2 with SM3 over ``data`` (default ID): ``e`` on the host, signed by the token."""
        return self.sign_digest(self.e(data, container), container)

    def digest(self, data: bytes, container: str | None = None, uid: bytes = _DEFAULT_UID) -> bytes:
        """SM3 computed by the library (SKF_DigestInit + SKF_Digest); with ``container`` it is
        ``e = SM3(Z || data)`` for that key and ``uid``, as GM/T 0016 specifies."""
        ffi = self._ffi
        blob: Any = ffi.NULL
        uid_arg: Any = ffi.NULL
        if container is not None:
            key = self.sm2_public_key(container)
            blob = ffi.new("ECCPUBLICKEYBLOB *")
            blob.BitLen = SM2_BITS
            blob.XCoordinate[32:64] = key.x.to_bytes(32, "big")
            blob.YCoordinate[32:64] = key.y.to_bytes(32, "big")
            uid_arg = bytes(uid)
        handle = ffi.new("HANDLE *")
        self._skf.call(
            "SKF_DigestInit",
            self._dev,
            int(AlgId.SM3),
            blob,
            uid_arg,
            len(uid) if container is not None else 0,
            handle,
        )
        try:
            out = ffi.new("BYTE[]", 64)
            size = ffi.new("ULONG *", 64)
            self._skf.call("SKF_Digest", handle[0], bytes(data), len(data), out, size)
            if size[0] != 32:
                raise SkfError(f"SKF_Digest returned {size[0]} bytes for SM3")
            return bytes(ffi.buffer(out, 32))
        finally:
            if self._skf.has("SKF_CloseHandle"):
                self._skf.function("SKF_CloseHandle")(handle[0])

    def confirm_and_sign(
        self,
        tx: Transaction,
        container: str = DEFAULT_CONTAINER,
        lang: str = "zh",
        *,
        verify_with: TokenPublicKey | None = None,
    ) -> SignResult:
        raise NotSupportedByToken(
            "an SKF token has no display and no button: it cannot show a transaction for the "
            "customer to confirm; use a token with a display (the native backend)"
        )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close containers, the application and the device (errors of a removed token are
        ignored: there is nothing left to close)."""
        fn = self._skf.function
        for handle in self._containers.values():
            fn("SKF_CloseContainer")(handle)
        self._containers.clear()
        if self._app is not None:
            fn("SKF_CloseApplication")(self._app)
            self._app = None
        if self._dev is not None:
            fn("SKF_DisConnectDev")(self._dev)
            self._dev = None

    def __enter__(self) -> SkfToken:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SkfSigningKey:
    """An SKF container's SM2 key as a :class:`ebank_auth.crypto.keys.SigningKey` (CSRs,
    certificates, CMS): SM2-with-SM3, default ID.  Verify the user PIN first."""

    def __init__(self, token: SkfToken, container: str = DEFAULT_LOGIN_CONTAINER) -> None:
        self._token = token
        self._container = container
        self._public = token.sm2_public_key(container)

    @property
    def container(self) -> str:
        return self._container

    def __repr__(self) -> str:
        return f"SkfSigningKey({self._token.description!r}, container={self._container!r})"

    def public_key(self) -> PublicKey:
        return self._public

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        if algorithm is not SignatureAlgorithm.SM2_SM3:
            raise UnsupportedAlgorithm(
                f"an SKF SM2 key signs only with SM2-with-SM3, not {algorithm.name}"
            )
        return self._token.sign_message(bytes(data), self._container)


def open_skf(
    library: str | os.PathLike[str] | SkfLibrary,
    device: str | None = None,
    application: str | None = None,
    *,
    ulong_bits: int = 32,
) -> SkfToken:
    """Open ``device`` (default: the only one the library sees) and ``application`` (default:
    the only one on the device) through the SKF library at ``library``."""
    lib = library if isinstance(library, SkfLibrary) else SkfLibrary(library, ulong_bits=ulong_bits)
    devices = lib.devices()
    if not devices:
        raise ReaderNotFound("the SKF library sees no device: plug in the token")
    if device is None:
        if len(devices) > 1:
            raise ConfigurationError(
                f"the SKF library sees {len(devices)} devices ({', '.join(devices)}): name one"
            )
        device = devices[0]
    elif device not in devices:
        raise ReaderNotFound(
            f"the SKF library sees no device {device!r}; it sees: {', '.join(devices)}"
        )
    return SkfToken(lib, device, application)


def _implements(token: SkfToken, key: SkfSigningKey) -> tuple[Token, SigningKey]:
    """Never called: mypy checks here that the classes implement the protocols."""
    return token, key
