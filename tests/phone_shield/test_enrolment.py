"""Phone-shield enrolment end to end (PS-4, PS-5), and refused without each of its steps."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import csr as a_csr
from cryptography.hazmat.primitives.asymmetric import ec

from ebank_auth.crypto import sm2
from ebank_auth.crypto.x509 import KeyUsage, load_csr
from ebank_auth.errors import (
    DeviceAttestationRejected,
    DeviceRequestRejected,
    EnrolmentRefused,
)
from ebank_auth.phone_shield import AttestationReason, EnrolmentReason, PasswordAndSmsCode
from ebank_auth.phone_shield.emulator import DeviceClaims, SoftwareAttestationAuthority
from ebank_auth.phone_shield.emulator import phone as phone_mod
from ebank_auth.phone_shield.keydescription import KeyOrigin, SecurityLevel, VerifiedBootState

from .conftest import PASSWORDS, PIN, SUBJECT, Bank

OPENSSL = shutil.which("openssl")


def test_enrolment_end_to_end_issues_an_sm2_certificate_for_the_joint_key(bank: Bank) -> None:
    codes = bank.codes_for()
    phone = bank.phone()
    offer = phone.open_link(codes.link)
    assert offer.reference_code == codes.reference_code  # the two channels show the same code
    cert = phone.enrol(codes.link, codes.authorisation_code, PIN)
    assert cert.subject == SUBJECT
    assert KeyUsage.DIGITAL_SIGNATURE in (cert.key_usage or set())  # PS-2
    assert isinstance(cert.public_key, sm2.SM2PublicKey)
    cert.verify_signed_by(bank.ca.certificate)
    status = bank.server.status(phone.device_id)
    assert status.state.value == "active" and status.identity_method == "password+sms"
    assert bank.server.device_for("alice") == phone.device_id
    # the enrolment is over: every step of it is refused now
    with pytest.raises(EnrolmentRefused) as exc:
        phone.open_link(codes.link)
    assert exc.value.reason is EnrolmentReason.UNKNOWN


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
def test_issued_certificate_verifies_with_openssl(bank: Bank, tmp_path: Path) -> None:
    phone = bank.enrolled_phone()
    (tmp_path / "ca.pem").write_bytes(bank.ca.certificate.to_pem())
    (tmp_path / "leaf.pem").write_bytes(phone.certificate.to_pem())
    out = subprocess.run(
        [str(OPENSSL), "verify", "-vfyopt", "distid:1234567812345678", "-CAfile",
         str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("OK")


# ---------------------------------------------------------------------- identity step
def test_refused_without_the_identity_step(bank: Bank) -> None:
    start = bank.server.start_enrolment("alice", SUBJECT)
    with pytest.raises(EnrolmentRefused) as exc:  # the phone cannot start before the codes
        bank.server.enrolment_info(start.enrolment_id, b"\x00" * 32)
    assert exc.value.reason is EnrolmentReason.STAGE
    with pytest.raises(EnrolmentRefused) as exc:
        bank.server.enrol_attest(start.enrolment_id, b"\x00" * 32, "12345678", [], b"")
    assert exc.value.reason is EnrolmentReason.STAGE


@pytest.mark.parametrize("wrong", ["password", "sms", "kind"])
def test_refused_with_a_wrong_identity_proof(bank: Bank, wrong: str) -> None:
    start = bank.server.start_enrolment("alice", SUBJECT)
    proof: Any = bank.identity_proof()
    if wrong == "password":
        proof = PasswordAndSmsCode("not the password", proof.code)
    elif wrong == "sms":
        proof = PasswordAndSmsCode(
            PASSWORDS["alice"], "000000" if proof.code != "000000" else "111111"
        )
    else:
        proof = "a string is no proof"
    with pytest.raises(EnrolmentRefused) as exc:
        bank.server.confirm_identity(start.enrolment_id, proof)
    assert exc.value.reason is EnrolmentReason.IDENTITY


def test_usb_key_identity_hook(tmp_path: Path) -> None:
    from ebank_auth.phone_shield import UsbKeyIdentity, UsbKeySignature

    from .conftest import make_bank

    bank = make_bank(tmp_path)
    usb_key = sm2.generate_private_key()
    bank.server.identity = UsbKeyIdentity({"alice": usb_key.public_key()}.get)
    start = bank.server.start_enrolment("alice", SUBJECT)
    with pytest.raises(EnrolmentRefused):  # signed by another key
        bank.server.confirm_identity(
            start.enrolment_id,
            UsbKeySignature(sm2.generate_private_key().sign(start.identity_challenge)),
        )
    codes = bank.server.confirm_identity(
        start.enrolment_id, UsbKeySignature(usb_key.sign(start.identity_challenge))
    )
    bank.phone().enrol(codes.link, codes.authorisation_code, PIN)


# ---------------------------------------------------------------------- codes and link
def test_wrong_authorisation_code_is_counted_and_the_third_cancels(bank: Bank) -> None:
    codes = bank.codes_for()
    wrong = "0" * 8 if codes.authorisation_code != "0" * 8 else "1" * 8
    phone = bank.phone()
    for left in (2, 1):
        with pytest.raises(EnrolmentRefused, match=f"{left} tr") as exc:
            phone.enrol(codes.link, wrong, PIN)
        assert exc.value.reason is EnrolmentReason.AUTHORISATION_CODE
    with pytest.raises(EnrolmentRefused):
        phone.enrol(codes.link, wrong, PIN)
    with pytest.raises(EnrolmentRefused) as exc:  # cancelled: even the right code is too late
        phone.enrol(codes.link, codes.authorisation_code, PIN)
    assert exc.value.reason is EnrolmentReason.UNKNOWN


def test_a_link_with_another_secret_is_refused(bank: Bank) -> None:
    codes = bank.codes_for()
    forged = codes.link.split("&s=")[0] + "&s=" + "A" * 43
    with pytest.raises(EnrolmentRefused) as exc:
        bank.phone().open_link(forged)
    assert exc.value.reason is EnrolmentReason.LINK


def test_authorisation_code_is_delivered_on_the_second_channel(tmp_path: Path) -> None:
    from .conftest import make_bank

    bank = make_bank(tmp_path)
    sent: list[tuple[str, str]] = []
    bank.server.authorisation_sender = lambda user, code: sent.append((user, code))
    codes = bank.codes_for()
    assert codes.authorisation_code is None and "secret" in repr(codes)
    assert sent and sent[0][0] == "alice"
    bank.phone().enrol(codes.link, sent[0][1], PIN)


# ---------------------------------------------------------------------- attestation
@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (DeviceClaims(security_level=SecurityLevel.SOFTWARE), AttestationReason.SECURITY_LEVEL),
        (DeviceClaims(keymint_level=SecurityLevel.SOFTWARE), AttestationReason.SECURITY_LEVEL),
        (DeviceClaims(package_name="com.evil.clone"), AttestationReason.PACKAGE),
        (DeviceClaims(signing_digest=b"\x01" * 32), AttestationReason.SIGNING_CERTIFICATE),
        (DeviceClaims(boot_state=VerifiedBootState.UNVERIFIED), AttestationReason.BOOT_STATE),
        (DeviceClaims(boot_state=VerifiedBootState.SELF_SIGNED), AttestationReason.BOOT_STATE),
        (DeviceClaims(device_locked=False), AttestationReason.DEVICE_UNLOCKED),
        (DeviceClaims(origin=KeyOrigin.IMPORTED), AttestationReason.ORIGIN),
        (DeviceClaims(attestation_version=2), AttestationReason.VERSION),
    ],
)
def test_bad_attestation_claims_are_refused(
    bank: Bank, claims: DeviceClaims, reason: AttestationReason
) -> None:
    codes = bank.codes_for()
    with pytest.raises(DeviceAttestationRejected) as exc:
        bank.phone(claims).enrol(codes.link, codes.authorisation_code, PIN)
    assert exc.value.reason is reason
    assert bank.server.device_for("alice") is None


def test_strongbox_is_accepted(bank: Bank) -> None:
    codes = bank.codes_for()
    bank.phone(DeviceClaims(security_level=SecurityLevel.STRONGBOX)).enrol(
        codes.link, codes.authorisation_code, PIN
    )


def _attest_with(bank: Bank, chain_for: Any) -> DeviceAttestationRejected:
    """Run the attestation step with the chain ``chain_for(challenge)`` makes."""
    from ebank_auth.crypto import sm2_2p
    from ebank_auth.phone_shield import EnrolmentLink

    codes = bank.codes_for()
    link = EnrolmentLink.parse(codes.link)
    info = bank.server.enrolment_info(link.enrolment_id, link.secret)
    request, _ = sm2_2p.phone_keygen_begin()
    with pytest.raises(DeviceAttestationRejected) as exc:
        bank.server.enrol_attest(
            link.enrolment_id,
            link.secret,
            codes.authorisation_code,
            chain_for(info.attestation_challenge),
            request.to_bytes(),
        )
    return exc.value


def test_attestation_for_another_challenge_is_refused(bank: Bank) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    exc = _attest_with(bank, lambda ch: bank.authority.attest(key, bytes(32)))
    assert exc.reason is AttestationReason.CHALLENGE


def test_attestation_under_an_untrusted_root_is_refused(bank: Bank) -> None:
    other = SoftwareAttestationAuthority.create()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    exc = _attest_with(bank, lambda ch: other.attest(key, ch))
    assert exc.reason is AttestationReason.UNTRUSTED_ROOT


def test_attestation_chain_with_a_broken_link_is_refused(bank: Bank) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    other = SoftwareAttestationAuthority.create()
    exc = _attest_with(
        bank, lambda ch: [other.attest(key, ch)[0], *bank.authority.attest(key, ch)[1:]]
    )
    assert exc.reason is AttestationReason.CHAIN


def test_attestation_without_its_chain_is_refused(bank: Bank) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    exc = _attest_with(bank, lambda ch: bank.authority.attest(key, ch)[:1])
    assert exc.reason is AttestationReason.MALFORMED


def test_key_description_below_a_genuine_attested_key_is_refused(bank: Bank) -> None:
    """A key with a genuine attestation signs a child claiming its own KeyDescription."""
    import datetime as dt

    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization

    from ebank_auth.phone_shield.keydescription import KEY_DESCRIPTION_OID

    attested = ec.generate_private_key(ec.SECP256R1())
    child_key = ec.generate_private_key(ec.SECP256R1()).public_key()

    def chain(ch: bytes) -> list[bytes]:
        genuine = bank.authority.attest(attested.public_key(), ch)
        parent = cx509.load_der_x509_certificate(genuine[0])
        ext = parent.extensions.get_extension_for_oid(cx509.ObjectIdentifier(KEY_DESCRIPTION_OID))
        child = (
            cx509.CertificateBuilder()
            .subject_name(parent.subject)
            .issuer_name(parent.subject)
            .public_key(child_key)
            .serial_number(2)
            .not_valid_before(dt.datetime(2020, 1, 1))
            .not_valid_after(dt.datetime(2040, 1, 1))
            .add_extension(ext.value, critical=False)
            .sign(attested, hashes.SHA256())
        )
        return [child.public_bytes(serialization.Encoding.DER), *genuine]

    exc = _attest_with(bank, chain)
    assert exc.reason in (AttestationReason.CHAIN, AttestationReason.EXTENSION)


# ---------------------------------------------------------------------- CSR and envelope
def _tamper_csr_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    real = phone_mod.build_csr

    def tampered(*args: Any, **kwargs: Any) -> Any:
        csr = real(*args, **kwargs)
        req = a_csr.CertificationRequest.load(csr.to_der())
        sig = bytearray(req["signature"].native)
        sig[-3] ^= 1
        req = a_csr.CertificationRequest(
            {
                "certification_request_info": req["certification_request_info"],
                "signature_algorithm": req["signature_algorithm"],
                "signature": bytes(sig),
            }
        )
        return load_csr(req.dump())

    monkeypatch.setattr(phone_mod, "build_csr", tampered)


def test_csr_without_proof_of_possession_is_refused(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tamper_csr_signature(monkeypatch)
    codes = bank.codes_for()
    with pytest.raises(EnrolmentRefused) as exc:
        bank.phone().enrol(codes.link, codes.authorisation_code, PIN)
    assert exc.value.reason is EnrolmentReason.CSR
    assert "proof of possession" in exc.value.message
    assert bank.server.device_for("alice") is None


def test_csr_for_another_subject_is_never_signed(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = phone_mod.build_csr
    monkeypatch.setattr(
        phone_mod,
        "build_csr",
        lambda _s, key, **kw: real("CN=Mallory,O=Example Bank,C=CN", key, **kw),
    )
    codes = bank.codes_for()
    with pytest.raises(EnrolmentRefused) as exc:
        bank.phone().enrol(codes.link, codes.authorisation_code, PIN)
    assert exc.value.reason is EnrolmentReason.CSR


@pytest.mark.parametrize("where", ["mac", "ciphertext", "key"])
def test_tampered_envelope_is_refused(
    bank: Bank, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    real = phone_mod.seal_envelope

    def tampered(csr: bytes, key: Any, mac_key: bytes, eid: str) -> bytes:
        if where == "key":  # a whole envelope made without this enrolment's session key
            return real(csr, key, bytes(32), eid)
        env = bytearray(real(csr, key, mac_key, eid))
        env[-1 if where == "mac" else -40] ^= 1
        return bytes(env)

    monkeypatch.setattr(phone_mod, "seal_envelope", tampered)
    codes = bank.codes_for()
    with pytest.raises(EnrolmentRefused) as exc:
        bank.phone().enrol(codes.link, codes.authorisation_code, PIN)
    assert exc.value.reason is EnrolmentReason.ENVELOPE


def test_envelope_round_trip_and_binding() -> None:
    from ebank_auth.errors import DecryptionError
    from ebank_auth.phone_shield.protocol import envelope_mac_key, open_envelope, seal_envelope

    key = sm2.generate_private_key()
    mac = envelope_mac_key(b"s" * 32, "e" * 32, "12345678")
    env = seal_envelope(b"csr bytes", key.public_key(), mac, "e" * 32)
    assert open_envelope(env, key, mac, "e" * 32) == b"csr bytes"
    for other_mac, other_eid in (
        (envelope_mac_key(b"s" * 32, "e" * 32, "12345679"), "e" * 32),  # another code
        (mac, "f" * 32),  # another enrolment
    ):
        with pytest.raises(DecryptionError):
            open_envelope(env, key, other_mac, other_eid)


def test_replayed_enrolment_request_is_refused(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    api_handle = bank.api.handle

    def record(method: str, path: str, body: bytes = b"") -> Any:
        import json

        if body:
            seen.append((method, path, json.loads(body)))
        return api_handle(method, path, body)

    monkeypatch.setattr(bank.api, "handle", record)
    phone = bank.enrolled_phone()
    method, path, body = next(s for s in seen if s[1].endswith("/keygen"))
    import json

    status, doc = api_handle(method, path, json.dumps(body).encode())
    assert status in (404, 409) and not doc["ok"]
    # a device request replayed at another path is refused by its signature
    req = next(s for s in seen if s[1].endswith("/finish"))[2]
    with pytest.raises(DeviceRequestRejected):
        from ebank_auth.phone_shield.protocol import SignedRequest

        bank.server.device_request(phone.device_id, "status", SignedRequest.from_json(req))
