"""Phone-shield signing, attempt limits, revocation and decryption (PS-1)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ebank_auth.confirmation import verify_confirmation
from ebank_auth.crypto import sm2, sm2_2p
from ebank_auth.errors import (
    DeviceLocked,
    DeviceRevoked,
    EncodingError,
    InvalidProof,
    JointSignatureRefused,
    PinPolicyError,
    SigningRefused,
)
from ebank_auth.phone_shield import PhoneShieldSettings, SessionStatus
from ebank_auth.phone_shield.emulator import PendingConfirmation, SoftwarePhone
from ebank_auth.phone_shield.protocol import b64e

from .conftest import PIN, Bank, make_bank, transfer

WRONG_PIN = "135799"


def _confirm(bank: Bank, phone: SoftwarePhone, n: int = 1, pin: str = PIN) -> str:
    session = bank.server.begin_signing(phone.device_id, transfer(n))
    pending = phone.pending()
    assert pending is not None and pending.session_id == session.session_id
    phone.confirm(pending, pin=pin)
    return session.session_id


def test_confirm_signs_exactly_the_recorded_transaction(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    tx = transfer(7)
    session = bank.server.begin_signing(phone.device_id, tx)
    pending = phone.pending()
    assert pending is not None and pending.transaction == tx
    shown: list[str] = []
    status = phone.confirm(pending, pin=PIN, decide=lambda text: shown.append(text) or True)
    assert status == "signed" and "张三" in shown[0] and "PS7" in shown[0]
    result = bank.server.signing_result(session.session_id)
    assert result.status is SessionStatus.SIGNED and result.signature is not None
    # an ordinary SM2 signature over the canonical bytes, by the certified key
    verify_confirmation(phone.certificate.public_key, result.signature, tx)  # type: ignore[arg-type]
    assert bank.server.status(phone.device_id).failures == 0
    with pytest.raises(SigningRefused):  # the verified signature is taken out once
        bank.server.signing_result(session.session_id)


def test_begin_signing_takes_a_transaction_never_a_digest(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    with pytest.raises(EncodingError):
        bank.server.begin_signing(phone.device_id, transfer().digest())  # type: ignore[arg-type]


def test_reject_on_the_phone(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    session = bank.server.begin_signing(phone.device_id, transfer())
    pending = phone.pending()
    assert pending is not None
    assert phone.confirm(pending, pin=PIN, decide=lambda _t: False) == "rejected"
    with pytest.raises(SigningRefused) as exc:
        bank.server.signing_result(session.session_id)
    assert exc.value.status is SessionStatus.REJECTED
    assert phone.pending() is None
    assert bank.server.status(phone.device_id).failures == 0


def test_tampered_transaction_is_refused_and_counted(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    session = bank.server.begin_signing(phone.device_id, transfer(1, "10.00"))
    pending = phone.pending()
    assert pending is not None
    # the phone shows (and would sign) another amount than the bank recorded
    forged = dataclasses.replace(pending, transaction=transfer(1, "99999.00"))
    with pytest.raises(InvalidProof):
        phone.confirm(forged, pin=PIN)
    assert bank.server.status(phone.device_id).failures == 1
    with pytest.raises(SigningRefused) as exc:
        bank.server.signing_result(session.session_id)
    assert exc.value.status is SessionStatus.FAILED


def test_replayed_session_is_refused_and_counted(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    bank.server.begin_signing(phone.device_id, transfer())
    pending = phone.pending()
    assert pending is not None
    phone.confirm(pending, pin=PIN)
    with pytest.raises(SigningRefused):
        phone.confirm(pending, pin=PIN)
    assert bank.server.status(phone.device_id).failures == 1


def test_substituted_point_is_refused_and_counted(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    bank.server.begin_signing(phone.device_id, transfer())
    pending = phone.pending()
    assert pending is not None
    share = phone.keystore.load_share(PIN)
    request, _ = sm2_2p.phone_sign_begin(
        share, sm2_2p.SignChallenge.from_bytes(pending.challenge), pending.transaction.encode()
    )
    other = sm2.generate_private_key().public_key()
    forged = sm2_2p.SignRequest(request.session_id, (other.x, other.y), request.proof)
    with pytest.raises(InvalidProof):
        phone._signed(
            "POST",
            f"/phone-shield/v1/sessions/{pending.session_id}/sign",
            {"sign_request": b64e(forged.to_bytes())},
        )
    assert bank.server.status(phone.device_id).failures == 1


def test_wrong_pin_gives_a_wrong_share_that_the_bank_counts(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    wrong = phone.keystore.load_share(WRONG_PIN)  # no error: the phone cannot tell
    assert bytes(wrong.scalar_bytes()) != bytes(phone.keystore.load_share(PIN).scalar_bytes())
    session = bank.server.begin_signing(phone.device_id, transfer())
    pending = phone.pending()
    assert pending is not None
    with pytest.raises(JointSignatureRefused):
        phone.confirm(pending, pin=WRONG_PIN)
    assert bank.server.status(phone.device_id).failures == 1
    with pytest.raises(SigningRefused) as exc:
        bank.server.signing_result(session.session_id)
    assert exc.value.status is SessionStatus.FAILED
    _confirm(bank, phone, 2)  # the right PIN still works and clears the count
    assert bank.server.status(phone.device_id).failures == 0


def test_attempt_limit_locks_the_device(tmp_path: Path) -> None:
    bank = make_bank(tmp_path, PhoneShieldSettings(max_sign_failures=3))
    phone = bank.enrolled_phone()
    for n in range(3):
        with pytest.raises(JointSignatureRefused):
            _confirm(bank, phone, n, pin=WRONG_PIN)
    status = bank.server.status(phone.device_id)
    assert status.state.value == "locked" and status.failures == 3
    with pytest.raises(DeviceLocked):
        bank.server.begin_signing(phone.device_id, transfer(9))
    assert phone.status()["state"] == "locked"
    bank.server.unlock(phone.device_id)
    _confirm(bank, phone, 10)


def test_a_session_opened_before_the_lock_cannot_be_used_after_it(tmp_path: Path) -> None:
    bank = make_bank(tmp_path, PhoneShieldSettings(max_sign_failures=1))
    phone = bank.enrolled_phone()
    bank.server.begin_signing(phone.device_id, transfer(1))
    first = phone.pending()
    assert first is not None
    bank.server.begin_signing(phone.device_id, transfer(2))
    second = phone.pending()
    assert second is not None
    with pytest.raises(JointSignatureRefused):
        phone.confirm(second, pin=WRONG_PIN)
    with pytest.raises(DeviceLocked):
        phone.confirm(first, pin=PIN)


def test_revocation_is_immediate(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    _confirm(bank, phone, 1)
    bank.server.begin_signing(phone.device_id, transfer(2))
    opened = phone.pending()
    assert opened is not None
    bank.server.revoke(phone.device_id, reason="phone lost")
    with pytest.raises(DeviceRevoked):
        phone.confirm(opened, pin=PIN)  # a session opened before the revocation
    with pytest.raises(DeviceRevoked):
        bank.server.begin_signing(phone.device_id, transfer(3))
    assert bank.store.get(f"phone-shield:share:{phone.device_id}") is None  # d2 is gone
    crl = bank.server.crl()
    crl.verify_signed_by(bank.ca.certificate)
    assert crl.is_revoked(phone.certificate.serial_number)


def test_revocation_from_the_phone(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    device_id, serial = phone.device_id, phone.certificate.serial_number
    phone.revoke()
    assert not phone.enrolled and not phone.keystore.has_share()
    assert bank.server.status(device_id).state.value == "revoked"
    assert serial in bank.server.revoked_serials()


def test_enrolling_a_new_phone_revokes_the_old_one(bank: Bank) -> None:
    old = bank.enrolled_phone()
    new = bank.enrolled_phone()
    assert bank.server.device_for("alice") == new.device_id
    assert bank.server.status(old.device_id).state.value == "revoked"
    _confirm(bank, new)


def test_two_party_decryption_once_per_session(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    public = phone.certificate.public_key
    assert isinstance(public, sm2.SM2PublicKey)
    ciphertext = public.encrypt(b"statement key 0123456789abcdef")
    sid = bank.server.begin_decryption(phone.device_id)
    assert phone.decrypt(sid, ciphertext, PIN) == b"statement key 0123456789abcdef"
    with pytest.raises(SigningRefused):
        phone.decrypt(sid, ciphertext, PIN)


def test_biometric_stand_in(bank: Bank) -> None:
    class Prompt:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

        def authenticate(self, reason: str) -> bool:
            return self.ok

    phone = bank.enrolled_phone()
    phone.keystore.enable_biometric(PIN)
    bank.server.begin_signing(phone.device_id, transfer())
    pending = phone.pending()
    assert isinstance(pending, PendingConfirmation)
    with pytest.raises(PinPolicyError):
        phone.confirm(pending, biometric=Prompt(False))
    assert phone.confirm(pending, biometric=Prompt(True)) == "signed"


def test_phone_state_survives_a_restart(bank: Bank, tmp_path: Path) -> None:
    codes = bank.codes_for()
    phone = bank.phone(state_dir=tmp_path / "phone")
    phone.enrol(codes.link, codes.authorisation_code, PIN)
    again = bank.phone(state_dir=tmp_path / "phone")
    assert again.device_id == phone.device_id and again.enrolled
    _confirm(bank, again)
    mode = (tmp_path / "phone" / "phone-state.json").stat().st_mode & 0o777
    assert mode == 0o600
    text = (tmp_path / "phone" / "phone-state.json").read_text()
    assert PIN not in text


def test_a_malformed_sign_request_changes_nothing(bank: Bank) -> None:
    phone = bank.enrolled_phone()
    bank.server.begin_signing(phone.device_id, transfer())
    pending = phone.pending()
    assert pending is not None
    from ebank_auth.errors import InvalidProtocolMessage

    with pytest.raises(InvalidProtocolMessage):
        phone._signed(
            "POST",
            f"/phone-shield/v1/sessions/{pending.session_id}/sign",
            {"sign_request": b64e(b"\x12\x01 not a sign request")},
        )
    assert bank.server.status(phone.device_id).failures == 0
    assert phone.confirm(pending, pin=PIN) == "signed"  # the session is still open


def test_server_keygen_state_survives_the_store_and_refuses_tampering() -> None:
    from ebank_auth.errors import InvalidProtocolMessage

    request, phone_state = sm2_2p.phone_keygen_begin()
    response, state = sm2_2p.server_keygen_respond(request)
    raw = state.to_bytes(request.phone_session_id)
    bad = bytearray(raw)
    bad[30] ^= 1  # inside d2: P2 no longer matches
    with pytest.raises(InvalidProtocolMessage):
        sm2_2p.ServerKeygenState.from_bytes(bad)
    restored = sm2_2p.ServerKeygenState.from_bytes(raw)
    confirm, phone_share = sm2_2p.phone_keygen_complete(phone_state, response)
    server_share = sm2_2p.server_keygen_complete(restored, confirm)
    signature = sm2_2p.local_sign(phone_share, server_share, b"m")
    server_share.public_key.verify(signature, b"m")
    with pytest.raises(InvalidProtocolMessage):  # another key generation's session id
        state.to_bytes(bytes(32))
