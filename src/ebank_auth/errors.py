"""One exception hierarchy for the whole library.

Every error derives from :class:`EbankAuthError`.  Messages say what went wrong
*and what to do about it*; they never contain secrets (PINs, keys, codes).

Areas have their own branch so callers can catch broadly or precisely::

    EbankAuthError
    ├── InvalidInput                  the caller's input or setting is unusable: fix it
    │   ├── ConfigurationError        bad setting, value outside the bounds the standards allow
    │   │   └── Pkcs11ModuleError     the file is not a loadable PKCS#11 module
    │   ├── EncodingError             malformed DER / PEM / TLV / JSON input
    │   │   └── InvalidTransaction
    │   ├── InvalidKey, UnsupportedAlgorithm, BackendUnavailable   (also CryptoError)
    │   ├── PolicyFileError           (also PolicyError)
    │   └── PinPolicyError, PasswordPolicyError   a new secret breaks the rules
    ├── ServiceUnavailable            something the operation needs is down: retry later
    │   ├── StoreUnavailable          (also StoreError) database / Redis unreachable
    │   ├── PcscUnavailable, ReaderNotFound, CardNotPresent, ReaderBusy, HidError
    │   │                             (also TransportError)
    │   └── DeliveryError             (also OtpError) SMS/voice gateway
    ├── CryptoError
    │   ├── InvalidSignature
    │   ├── DecryptionError
    │   └── TwoPartyError             two-party SM2 (phone shield) refused a message
    │       ├── InvalidProtocolMessage, InvalidProof, SessionAlreadyUsed
    │       └── JointSignatureRefused (also InvalidSignature)
    ├── CertificateError
    │   ├── CertificateValidationError  (carries a machine-readable reason)
    │   └── CMSError
    ├── StoreError
    │   ├── ConflictError
    │   └── StoreIntegrityError       a stored value has the wrong type (edited by hand)
    ├── TokenError                     USB Key / V盾
    │   ├── TransportError
    │   ├── ApduError (sw)
    │   ├── PinIncorrect (remaining), PinLocked
    │   ├── SecurityStatusNotSatisfied, ConfirmationRejected, ConfirmationTimeout
    │   ├── TokenNotGenuine, SecureChannelError, KeyAlreadyExists
    │   ├── ContainerNotFound         (also InvalidInput) no such key/container on the token
    │   ├── Pkcs11Error (rv)           a PKCS#11 module refused with a CKR_* code
    │   └── SkfError (code)           an SKF (GM/T 0016) library refused a call
    │       └── SkfLibraryError       (also InvalidInput) not a usable SKF library
    ├── OtpError
    │   ├── CodeInvalid, CodeExpired, CodeAlreadyUsed, CodeAttemptsExceeded,
    │   ├── RateLimited, ReplayDetected
    ├── SoftKeyboardError
    ├── PasswordError
    │   ├── PasswordIncorrect, PasswordChangeRequired
    ├── PolicyError
    │   ├── AccessDenied, AccountLocked, DuplicateTransaction
    ├── PhoneShieldError               phone shield (ebank_auth.phone_shield)
    │   ├── EnrolmentRefused (reason)  a step of the enrolment is missing or does not verify
    │   │   └── DeviceAttestationRejected (reason)
    │   ├── DeviceRequestRejected      bad device signature or a replayed request counter
    │   ├── DeviceLocked, DeviceRevoked
    │   └── SigningRefused (status)    a signing session is unknown, used, rejected or failed
    ├── WebAuthnError                  passkeys (ebank_auth.webauthn)
    │   ├── CeremonyInvalid            the begin/complete state is unknown, expired or used
    │   ├── PasskeyAlreadyRegistered
    │   └── PasskeyRejected (reason)   the browser's response does not verify
    │       ├── AttestationRejected, PasskeyCloneSuspected
    └── AuditError
        └── AuditIntegrityError

Three cross-cutting bases sort every error by *what the caller should do*, and the
``ebank-auth`` exit codes follow them (see ``docs/exit-codes.md``):

* :class:`InvalidInput` -- fix the input or the setting (exit code 2);
* :class:`ServiceUnavailable` -- a service is down, nothing was decided (exit code 3);
* every other error is a refusal: the answer is no (exit code 1).
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AccountLocked",
    "ApduError",
    "AttestationRejected",
    "AuditError",
    "AuditIntegrityError",
    "BackendUnavailable",
    "CAdESVerificationError",
    "CMSError",
    "CMSVerificationError",
    "CardNotPresent",
    "CeremonyInvalid",
    "CertificateError",
    "CertificateValidationError",
    "CodeAlreadyUsed",
    "CodeAttemptsExceeded",
    "CodeExpired",
    "CodeInvalid",
    "ConfigurationError",
    "ConfirmationRejected",
    "ConfirmationTimeout",
    "ConflictError",
    "ContainerNotFound",
    "CryptoError",
    "DecryptionError",
    "DeliveryError",
    "DeviceAttestationRejected",
    "DeviceLocked",
    "DeviceRequestRejected",
    "DeviceRevoked",
    "DuplicateTransaction",
    "EbankAuthError",
    "EncodingError",
    "EnrolmentRefused",
    "HidError",
    "InvalidInput",
    "InvalidKey",
    "InvalidProof",
    "InvalidProtocolMessage",
    "InvalidSignature",
    "InvalidTransaction",
    "JointSignatureRefused",
    "KeyAlreadyExists",
    "NotSupportedByToken",
    "OtpError",
    "PasskeyAlreadyRegistered",
    "PasskeyCloneSuspected",
    "PasskeyRejected",
    "PasswordChangeRequired",
    "PasswordError",
    "PasswordIncorrect",
    "PasswordPolicyError",
    "PcscUnavailable",
    "PhoneShieldError",
    "PinIncorrect",
    "PinLocked",
    "PinPolicyError",
    "Pkcs11Error",
    "Pkcs11ModuleError",
    "PolicyError",
    "PolicyFileError",
    "RateLimited",
    "ReaderBusy",
    "ReaderNotFound",
    "ReplayDetected",
    "SecureChannelError",
    "SecurityStatusNotSatisfied",
    "ServiceUnavailable",
    "SessionAlreadyUsed",
    "SigningRefused",
    "SkfError",
    "SkfLibraryError",
    "SoftKeyboardError",
    "StoreError",
    "StoreIntegrityError",
    "StoreUnavailable",
    "TimestampError",
    "TimestampUnavailable",
    "TimestampVerificationError",
    "TokenError",
    "TokenNotGenuine",
    "TransportError",
    "TwoPartyError",
    "UnsupportedAlgorithm",
    "WebAuthnError",
    "XMLSignatureError",
    "XMLSignatureVerificationError",
]


class EbankAuthError(Exception):
    """Root of every error raised by ebank_auth."""

    default_message = "ebank-auth operation failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.default_message


class InvalidInput(EbankAuthError):
    """The caller's input (a file, an option, a setting) is unusable: fix it and try again."""

    default_message = "the input is not usable: check the value named in the message"


class ServiceUnavailable(EbankAuthError):
    """A service the operation needs (PC/SC, reader, token, database, Redis, gateway) is down.

    Nothing was decided: callers must fail closed and may retry later.
    """

    default_message = "a service needed for this operation is unavailable: check it and retry"


class ConfigurationError(InvalidInput):
    default_message = "invalid configuration: check the setting named in the message"


# --------------------------------------------------------------------------- crypto


class CryptoError(EbankAuthError):
    default_message = "cryptographic operation failed"


class InvalidSignature(CryptoError):
    default_message = (
        "signature does not verify: the data, the signer's key or the distinguishing ID "
        "(uid) differ from what was signed"
    )


class InvalidKey(CryptoError, InvalidInput):
    default_message = "key is malformed or unsuitable: supply a valid key of the expected type"


class DecryptionError(CryptoError):
    default_message = (
        "decryption failed: the ciphertext was altered, is in another format, "
        "or was made for a different key"
    )


class UnsupportedAlgorithm(CryptoError, InvalidInput):
    default_message = "algorithm or parameter not supported: use SM2/SM3/SM4 or RSA-2048+"


class BackendUnavailable(CryptoError, InvalidInput):
    default_message = (
        "the requested crypto backend is not available on this machine: "
        "unset EBANK_AUTH_CRYPTO_BACKEND or choose 'pure'"
    )


class TwoPartyError(CryptoError):
    """Two-party SM2 (:mod:`ebank_auth.crypto.sm2_2p`) refused a message or a result."""

    default_message = "two-party SM2 refused the operation: start a new session"


class InvalidProtocolMessage(TwoPartyError):
    default_message = (
        "two-party SM2 message is malformed, belongs to another session or carries an invalid "
        "curve point: discard it and start a new session"
    )


class InvalidProof(TwoPartyError):
    default_message = (
        "the peer's proof of knowledge does not verify: the message was altered or the peer "
        "deviated from the protocol; start a new session"
    )


class SessionAlreadyUsed(TwoPartyError):
    default_message = (
        "this two-party session state was already completed (nonces are used once): "
        "start a new session"
    )


class JointSignatureRefused(TwoPartyError, InvalidSignature):
    default_message = (
        "the assembled two-party signature does not verify with the joint public key, so it "
        "was not released: a share is wrong (wrong PIN?) or the peer deviated; start a new session"
    )


class EncodingError(InvalidInput):
    default_message = "input is not well-formed (DER, PEM, TLV or JSON): check the file or bytes"


class InvalidTransaction(EncodingError):
    default_message = (
        "the transaction is malformed: fix the field named in the message "
        "(id, type, accounts, payee name, amount, currency, time or memo)"
    )


# --------------------------------------------------------------------------- certificates


class CertificateError(EbankAuthError):
    default_message = "certificate error"


class CertificateValidationError(CertificateError):
    """A certificate or chain was refused; ``reason`` is a machine-readable code."""

    def __init__(self, message: str | None = None, reason: object = None) -> None:
        super().__init__(message)
        self.reason = reason


class CMSError(CertificateError):
    default_message = "CMS SignedData is malformed or does not verify"


class CMSVerificationError(CMSError):
    """A CMS SignedData was refused; ``reason`` is a machine-readable code (cms.CMSReason),
    ``result`` the full report (cms.CMSValidationResult) when there is one."""

    def __init__(
        self, message: str | None = None, reason: object = None, result: object = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.result = result


class CAdESVerificationError(CMSError):
    """A CAdES-BES/-T signature was refused; ``reason`` is a cades.CAdESReason, ``result``
    the full report (cades.CAdESValidationResult)."""

    def __init__(
        self, message: str | None = None, reason: object = None, result: object = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.result = result


class TimestampError(CertificateError):
    default_message = (
        "RFC 3161 timestamp request or response is malformed or refused: check the TSA URL "
        "and its certificate"
    )


class TimestampVerificationError(TimestampError):
    """A timestamp token or response was refused; ``reason`` is a tsp.TimestampReason."""

    def __init__(
        self, message: str | None = None, reason: object = None, result: object = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.result = result


class TimestampUnavailable(TimestampError, ServiceUnavailable):
    default_message = (
        "the timestamp authority (TSA) could not be reached or did not answer over HTTP: "
        "check its URL and that it is up, then retry"
    )


class XMLSignatureError(CertificateError):
    default_message = (
        "the XML document or its signature is malformed: check it is one well-formed XML "
        "document without a DTD"
    )


class XMLSignatureVerificationError(XMLSignatureError):
    """An XML signature was refused; ``reason`` is an xmldsig.XMLReason, ``result`` the full
    report (xmldsig.XMLValidationResult)."""

    def __init__(
        self, message: str | None = None, reason: object = None, result: object = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.result = result


# --------------------------------------------------------------------------- state stores


class StoreError(EbankAuthError):
    default_message = "state store error"


class StoreUnavailable(StoreError, ServiceUnavailable):
    default_message = (
        "state store unreachable: the operation was refused (fail closed); "
        "check the database/Redis connection"
    )


class ConflictError(StoreError):
    default_message = "concurrent update conflict: retry the operation"


class StoreIntegrityError(StoreError):
    """A stored value is not what the store wrote (wrong SQLite type, wrong Redis key
    type): the database was edited outside ebank-auth.  Nothing is decided on it."""

    default_message = (
        "a value in the state store has the wrong type (edited outside ebank-auth): "
        "refused; restore the database from a backup and investigate"
    )


# --------------------------------------------------------------------------- USB Key / token


class TokenError(EbankAuthError):
    default_message = "token operation failed"


class TransportError(TokenError):
    default_message = "could not talk to the token: check the reader and the connection"


class PcscUnavailable(TransportError, ServiceUnavailable):
    default_message = (
        "PC/SC service not running: start pcscd (e.g. 'pcscd' or 'systemctl start pcscd')"
    )


class ReaderNotFound(TransportError, ServiceUnavailable):
    default_message = "no smart-card reader found: plug in the token or start the software token"


class CardNotPresent(TransportError, ServiceUnavailable):
    default_message = "no token in the reader: insert the token and try again"


class ReaderBusy(TransportError, ServiceUnavailable):
    default_message = (
        "the reader is held exclusively by another program: close the other program "
        "(browser plug-in, bank client) and try again"
    )


class HidError(TransportError, ServiceUnavailable):
    default_message = "HID token communication failed: unplug and re-insert the token"


class ApduError(TokenError):
    """The token answered with an unexpected status word."""

    def __init__(self, sw: int, message: str | None = None) -> None:
        super().__init__(message or f"token refused the command (status word {sw:04X})")
        self.sw = sw


class PinIncorrect(TokenError):
    def __init__(self, remaining: int, message: str | None = None) -> None:
        super().__init__(
            message
            or (
                f"wrong PIN: {remaining} attempt(s) left before the token locks"
                if remaining > 0
                else "wrong PIN: no attempts left, the token is now locked; unblock it with the admin PIN"
            )
        )
        self.remaining = remaining


class PinLocked(TokenError):
    default_message = (
        "the PIN is locked after too many wrong attempts: unblock it with the admin (SO) PIN "
        "or at the bank counter"
    )


class PinPolicyError(TokenError, InvalidInput):
    default_message = (
        "the new PIN does not meet the complexity rules: choose a longer, non-trivial PIN"
    )


class SecurityStatusNotSatisfied(TokenError):
    default_message = "operation needs a verified PIN: verify the PIN first"


class ConfirmationRejected(TokenError):
    default_message = "the transaction was rejected on the token: nothing was signed"


class ConfirmationTimeout(TokenError):
    default_message = "no button press on the token in time: nothing was signed; try again"


class TokenNotGenuine(TokenError):
    default_message = (
        "the token could not prove it is genuine (device certificate or firmware check failed): "
        "do not use it, contact the bank"
    )


class SecureChannelError(TokenError):
    default_message = "secure channel to the token failed or was tampered with: reconnect the token"


class NotSupportedByToken(TokenError):
    """The token (or its backend) cannot do this at all — e.g. confirm-and-sign on a PIV card,
    which has no display.  Not a failure of this token: use a token or backend that can."""

    default_message = (
        "this token cannot do that: it has no such function (e.g. no display for "
        "confirm-and-sign); use a token or backend that offers it"
    )


class SkfError(TokenError):
    """An SKF (GM/T 0016) library returned an error code no more specific error covers;
    ``code`` is the ``SAR_*`` value (``None`` when the library could not be called at all)."""

    default_message = "the SKF library refused the operation: see the SAR code in the message"

    def __init__(self, message: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SkfLibraryError(SkfError, InvalidInput):
    """The file given as SKF library cannot be used: it does not exist, is not a shared
    library, or lacks the SKF functions the backend needs."""

    default_message = (
        "the SKF library cannot be used: give the path of your token vendor's SKF (GM/T 0016) "
        "shared library"
    )


class KeyAlreadyExists(TokenError):
    default_message = (
        "the key container already holds a key: the token does not replace it silently; "
        "choose another container, or replace it on purpose with the admin (SO) PIN "
        "(--force on the command line)"
    )


class ContainerNotFound(TokenError, InvalidInput):
    default_message = (
        "the token holds no key or certificate under that name: list the containers "
        "('ebank-auth token list') and give one of them, or generate a key first"
    )


class Pkcs11Error(TokenError):
    """A PKCS#11 module answered with a ``CKR_*`` code that has no more precise error here;
    ``rv`` is the code, ``name`` its ``CKR_`` name."""

    def __init__(self, rv: int, message: str | None = None, name: str = "") -> None:
        label = name or f"CKR 0x{rv:08X}"
        super().__init__(
            message or f"the PKCS#11 module refused the operation ({label}): see its log"
        )
        self.rv = rv
        self.name = label


class Pkcs11ModuleError(ConfigurationError):
    default_message = (
        "the file is not a usable PKCS#11 module: give the path of the token vendor's "
        "PKCS#11 library (a .so exporting C_GetFunctionList)"
    )


# --------------------------------------------------------------------------- one-time codes


class OtpError(EbankAuthError):
    default_message = "one-time code error"


class CodeInvalid(OtpError):
    default_message = "the code is wrong: check it and try again, or request a new one"


class CodeExpired(OtpError):
    default_message = "the code has expired: request a new one"


class CodeAlreadyUsed(OtpError):
    default_message = "the code was already used: request a new one"


class CodeAttemptsExceeded(OtpError):
    default_message = "too many wrong attempts for this code: request a new one"


class RateLimited(OtpError):
    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message or "too many requests: wait before asking again")
        self.retry_after = retry_after


class DeliveryError(OtpError, ServiceUnavailable):
    default_message = (
        "the code could not be delivered: check the registered phone number or gateway"
    )


class ReplayDetected(OtpError):
    default_message = "this value was already used once and is refused (replay)"


# --------------------------------------------------------------------------- soft keyboard


class SoftKeyboardError(EbankAuthError):
    default_message = "soft keyboard input refused: open a new keyboard and type again"


# --------------------------------------------------------------------------- passwords


class PasswordError(EbankAuthError):
    default_message = "password error"


class PasswordPolicyError(PasswordError, InvalidInput):
    default_message = "the password does not meet the complexity rules"


class PasswordIncorrect(PasswordError):
    default_message = "wrong password"


class PasswordChangeRequired(PasswordError):
    default_message = "the password must be changed before continuing (first login or reset)"


# --------------------------------------------------------------------------- policy


class PolicyError(EbankAuthError):
    default_message = "policy error"


class PolicyFileError(PolicyError, InvalidInput):
    default_message = "the policy file is invalid: fix the entry named in the message"


class AccessDenied(PolicyError):
    default_message = "the operation is denied by policy"


class AccountLocked(PolicyError):
    default_message = (
        "online banking login is locked after too many failed attempts: "
        "try again tomorrow or contact the bank"
    )


class DuplicateTransaction(PolicyError):
    default_message = "this transaction was already submitted and is refused as a duplicate"


# --------------------------------------------------------------------------- passkeys


class PhoneShieldError(EbankAuthError):
    default_message = "phone shield operation failed"


class EnrolmentRefused(PhoneShieldError):
    """A phone-shield enrolment step is missing, out of order or does not verify; ``reason``
    is a machine-readable code (:class:`ebank_auth.phone_shield.EnrolmentReason`).  The
    enrolment's state is unchanged, except that a wrong authorisation code spends a try."""

    default_message = (
        "the phone-shield enrolment was refused: start the enrolment again from online banking"
    )

    def __init__(self, message: str | None = None, reason: object = None) -> None:
        super().__init__(message)
        self.reason = reason


class DeviceAttestationRejected(EnrolmentRefused):
    default_message = (
        "the phone's key attestation is not accepted: the phone must keep its key in secure "
        "hardware (TEE or StrongBox), run a verified, locked boot and the bank's genuine app"
    )


class DeviceRequestRejected(PhoneShieldError):
    default_message = (
        "the request does not carry a valid signature of this phone's device key with a new "
        "counter (a replayed or altered request): nothing was changed"
    )


class DeviceLocked(PhoneShieldError):
    default_message = (
        "this phone shield is locked after too many failed signatures (wrong PIN?): "
        "contact the bank to unlock it or enrol the phone again"
    )


class DeviceRevoked(PhoneShieldError):
    default_message = (
        "this phone shield is revoked or not enrolled: enrol the phone again from online banking"
    )


class SigningRefused(PhoneShieldError):
    """A phone-shield signing session is unknown, expired, already used, rejected on the
    phone or failed; ``status`` says which (a :class:`ebank_auth.phone_shield.SessionStatus`
    value or None)."""

    default_message = (
        "this phone-shield signing session is unknown, expired or already finished: start a "
        "new confirmation"
    )

    def __init__(self, message: str | None = None, status: object = None) -> None:
        super().__init__(message)
        self.status = status


class WebAuthnError(EbankAuthError):
    default_message = "passkey (WebAuthn) operation failed"


class CeremonyInvalid(WebAuthnError):
    default_message = (
        "this passkey request is unknown, expired or was already used: "
        "start the registration or sign-in again"
    )


class PasskeyAlreadyRegistered(WebAuthnError):
    default_message = (
        "this passkey is already registered: sign in with it, or remove it before "
        "registering it again"
    )


class PasskeyRejected(WebAuthnError):
    """The browser's WebAuthn response does not verify; ``reason`` is a machine-readable
    code (:class:`ebank_auth.webauthn.RejectReason`).  Nothing was changed."""

    default_message = "the passkey response does not verify: start the sign-in again"

    def __init__(self, message: str | None = None, reason: object = None) -> None:
        super().__init__(message)
        self.reason = reason


class AttestationRejected(PasskeyRejected):
    default_message = (
        "the authenticator's attestation is not trusted by this bank's policy: "
        "register a passkey on an authenticator the bank accepts"
    )


class PasskeyCloneSuspected(PasskeyRejected):
    """The signature counter did not increase: two authenticators may hold the same key.
    ``credential_id`` is the passkey's id (bytes); it is refused until re-registered."""

    default_message = (
        "the passkey's signature counter went back, so it may have been cloned: the passkey "
        "is blocked; remove it and register a new one, and contact the bank"
    )

    def __init__(
        self,
        message: str | None = None,
        reason: object = None,
        credential_id: bytes = b"",
    ) -> None:
        super().__init__(message, reason)
        self.credential_id = credential_id


# --------------------------------------------------------------------------- audit


class AuditError(EbankAuthError):
    default_message = "audit log error"


class AuditIntegrityError(AuditError):
    """The audit log does not verify; ``first_bad`` is the first bad record's sequence number
    (None when the problem is not one record), ``report`` the full report when there is one."""

    def __init__(
        self, message: str | None = None, first_bad: int | None = None, report: object = None
    ) -> None:
        super().__init__(message or "the audit log was altered: it does not verify")
        self.first_bad = first_bad
        self.report = report
