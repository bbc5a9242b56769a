"""Production trust: Google's hardware attestation roots, shipped and pinned by SPKI SHA-256."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ebank_auth.errors import ConfigurationError, DeviceAttestationRejected
from ebank_auth.phone_shield import AttestationPolicy, AttestationReason, AttestationTrust
from ebank_auth.phone_shield.attestation import GOOGLE_ROOT_SPKI_SHA256, verify_android_attestation
from ebank_auth.phone_shield.emulator import (
    DEFAULT_PACKAGE,
    SoftwareAttestationAuthority,
    default_signing_digest,
)


def test_google_roots_load_and_match_their_pins() -> None:
    trust = AttestationTrust.google()
    assert trust.pins == GOOGLE_ROOT_SPKI_SHA256 and len(trust.pins) == 2


def test_a_software_phone_is_refused_under_production_trust() -> None:
    authority = SoftwareAttestationAuthority.create()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    challenge = b"c" * 32
    policy = AttestationPolicy(DEFAULT_PACKAGE, frozenset({default_signing_digest()}))
    with pytest.raises(DeviceAttestationRejected) as exc:
        verify_android_attestation(
            authority.attest(key, challenge), challenge, policy, AttestationTrust.google()
        )
    assert exc.value.reason is AttestationReason.UNTRUSTED_ROOT
    verify_android_attestation(  # the same chain under its own (test) root passes
        authority.attest(key, challenge),
        challenge,
        policy,
        AttestationTrust.from_roots([authority.root_der()]),
    )


def test_no_roots_and_weak_policies_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="google"):
        AttestationTrust([])
    with pytest.raises(ConfigurationError):
        AttestationPolicy(DEFAULT_PACKAGE, frozenset())
    with pytest.raises(ConfigurationError, match="software keystore"):
        AttestationPolicy(DEFAULT_PACKAGE, frozenset({b"d" * 32}), allowed_levels=frozenset({0}))


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/phone-shield/v1/sessions/xx/sign", b"not json", 400),
        ("POST", "/phone-shield/v1/devices/" + "a" * 32 + "/status", b"{}", 400),
        ("POST", "/elsewhere", b"{}", 404),
        ("DELETE", "/phone-shield/v1/enrolments/x", b"", 404),
        ("GET", "/phone-shield/v1/enrolments/" + "0" * 32 + "?s=AAAA", b"", 404),
    ],
)
def test_api_answers_bad_requests_with_typed_json(
    bank: object, method: str, path: str, body: bytes, status: int
) -> None:
    from .conftest import Bank

    assert isinstance(bank, Bank)
    got, doc = bank.api.handle(method, path, body)
    assert got == status and doc["ok"] is False and doc["error"]["type"]
