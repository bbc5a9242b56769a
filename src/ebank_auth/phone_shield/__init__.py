"""Phone shield (手机盾): the bank's half of a two-party SM2 key bound to an attested phone.

* :class:`PhoneShieldServer` — enrolment (identity step, authorisation + reference codes,
  device attestation, joint key generation, the CSR in its SM2/SM4 envelope, certificate),
  the device registry, signing and decryption sessions in the store, attempt limits and
  revocation (:mod:`.server`);
* :class:`PhoneShieldApi` — the phone's HTTP JSON contract, framework-neutral (:mod:`.http`);
* :func:`verify_android_attestation` — device binding by Android Key Attestation
  (:mod:`.attestation`, :mod:`.keydescription`);
* the envelope, device-signed requests and the enrolment link shared with phones
  (:mod:`.protocol`).

The software phone is :mod:`ebank_auth.phone_shield.emulator`.  Guide: ``docs/phone-shield.md``.
"""

from ebank_auth.phone_shield.attestation import (
    AttestationPolicy,
    AttestationReason,
    AttestationTrust,
    AttestedDevice,
    verify_android_attestation,
)
from ebank_auth.phone_shield.http import PhoneShieldApi, serve
from ebank_auth.phone_shield.keydescription import KeyDescription, SecurityLevel
from ebank_auth.phone_shield.protocol import API_PREFIX, EnrolmentLink, SignedRequest
from ebank_auth.phone_shield.server import (
    DeviceState,
    DeviceStatus,
    EnrolledDevice,
    EnrolmentCodes,
    EnrolmentInfo,
    EnrolmentReason,
    EnrolmentStart,
    IdentityVerifier,
    PasswordAndSmsCode,
    PasswordAndSmsIdentity,
    PhoneShieldServer,
    PhoneShieldSettings,
    SessionStatus,
    SigningResult,
    SigningSession,
    UsbKeyIdentity,
    UsbKeySignature,
)

__all__ = [
    "API_PREFIX",
    "AttestationPolicy",
    "AttestationReason",
    "AttestationTrust",
    "AttestedDevice",
    "DeviceState",
    "DeviceStatus",
    "EnrolledDevice",
    "EnrolmentCodes",
    "EnrolmentInfo",
    "EnrolmentLink",
    "EnrolmentReason",
    "EnrolmentStart",
    "IdentityVerifier",
    "KeyDescription",
    "PasswordAndSmsCode",
    "PasswordAndSmsIdentity",
    "PhoneShieldApi",
    "PhoneShieldServer",
    "PhoneShieldSettings",
    "SecurityLevel",
    "SessionStatus",
    "SignedRequest",
    "SigningResult",
    "SigningSession",
    "UsbKeyIdentity",
    "UsbKeySignature",
    "serve",
    "verify_android_attestation",
]
