"""python-fido2 drives the software token's CTAP2 applet end to end through a real pcscd.

The client is python-fido2's own ``CtapPcscDevice`` + ``Fido2Client`` on the reader that vpcd
gives the software token; the relying party is python-fido2's ``Fido2Server``.  Nothing of ours
sits between them: this is the proof that the applet is a standard CTAP2 authenticator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fido2.attestation import AttestationType, PackedAttestation
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.pcsc import CtapPcscDevice
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    AttestationObject,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ebank_auth.crypto import x509
from ebank_auth.usbkey.emulator.applets import AppletRouter
from ebank_auth.usbkey.emulator.card import SoftToken, token_card
from ebank_auth.usbkey.emulator.ctap2_applet import AAGUID, Ctap2Applet
from ebank_auth.usbkey.emulator.display import AutoApprove, AutoReject, ConfirmationDevice
from plugins.pcscd import PcscdVpcd

from .conftest import ORIGIN, RP_ID

pytestmark = pytest.mark.pcsc

PIN = "4711-fido"


class _Pin(UserInteraction):
    def __init__(self, pin: str | None) -> None:
        self.pin = pin
        self.prompts = 0

    def prompt_up(self) -> None:
        self.prompts += 1

    def request_pin(self, permissions: Any, rp_id: str | None) -> str | None:
        return self.pin


@pytest.fixture
def token_dir(tmp_path: Path) -> Path:
    return tmp_path / "token"


@pytest.fixture
def insert(
    pcscd_vpcd: PcscdVpcd, token_dir: Path
) -> Iterator[Callable[[ConfirmationDevice], AppletRouter]]:
    def put(display: ConfirmationDevice) -> AppletRouter:
        card = token_card(token_dir, display)
        pcscd_vpcd.attach(card, reader=0)
        return card

    try:
        yield put
    finally:
        _close_devices()
        for link in list(pcscd_vpcd._links):  # also what a power cycle attached again
            pcscd_vpcd.detach(link)


_open: list[CtapPcscDevice] = []


def _device(pcscd_vpcd: PcscdVpcd) -> CtapPcscDevice:
    """python-fido2's device on the token's reader.  The one opened before is closed first: a
    PC/SC client that disconnects powers the card down, which would break a connection still
    open beside it (and is a power cycle for the applet, as on a real reader)."""
    _close_devices()
    devices = list(CtapPcscDevice.list_devices(pcscd_vpcd.readers[0]))
    assert len(devices) == 1, "python-fido2 did not find the FIDO applet on the reader"
    _open.append(devices[0])
    return devices[0]


def _close_devices() -> None:
    while _open:
        _open.pop().close(release=True)


def _power_cycle(pcscd_vpcd: PcscdVpcd, card: AppletRouter) -> None:
    """Take the token out of the reader and put it back (pcscd powers it up again)."""
    _close_devices()
    for link in list(pcscd_vpcd._links):
        pcscd_vpcd.detach(link)
    pcscd_vpcd.attach(card, reader=0)


def _manufacturer_root(card: AppletRouter) -> x509.Certificate:
    token = card.applet(SoftToken)
    assert isinstance(token, SoftToken)
    return token.manufacturer.root


def _verifier(root: x509.Certificate) -> Callable[[AttestationObject, bytes], None]:
    """Attestation check: python-fido2 verifies the packed statement (signature, certificate
    profile, AAGUID extension); our x509 verifies the certificate's SM2 signature by the test
    manufacturer's root (python-fido2's chain check knows RSA and ECDSA only)."""

    def verify(attestation: AttestationObject, client_data_hash: bytes) -> None:
        result = PackedAttestation().verify(
            attestation.att_stmt, attestation.auth_data, client_data_hash
        )
        assert result.attestation_type == AttestationType.BASIC
        leaf = x509.load_certificate(attestation.att_stmt["x5c"][0])
        leaf.verify_signed_by(root)
        verify.calls += 1  # type: ignore[attr-defined]

    verify.calls = 0  # type: ignore[attr-defined]
    return verify


def test_get_info_through_pcscd(insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd) -> None:
    insert(AutoApprove())
    info = Ctap2(_device(pcscd_vpcd)).get_info()
    assert {"FIDO_2_0", "FIDO_2_1"} <= set(info.versions)
    assert bytes(info.aaguid) == AAGUID and any(AAGUID)
    assert info.options["clientPin"] is False  # present, and false on a fresh token
    assert info.options["rk"] is True and info.options["up"] is True
    assert info.pin_uv_protocols == [2]
    assert [a["alg"] for a in info.algorithms] == [-7]


def test_register_and_sign_in_verified_by_fido2_server(
    insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd
) -> None:
    card = insert(AutoApprove())
    verify = _verifier(_manufacturer_root(card))
    server = Fido2Server(
        PublicKeyCredentialRpEntity(name="Bank", id=RP_ID),
        attestation=AttestationConveyancePreference.DIRECT,
        verify_attestation=verify,
    )
    ui = _Pin(None)
    client = Fido2Client(
        _device(pcscd_vpcd), DefaultClientDataCollector(ORIGIN), user_interaction=ui
    )
    user = PublicKeyCredentialUserEntity(id=b"customer-1", name="alice", display_name="Alice")
    counters = []
    for resident in (ResidentKeyRequirement.DISCOURAGED, ResidentKeyRequirement.REQUIRED):
        options, state = server.register_begin(
            user, resident_key_requirement=resident, user_verification="discouraged"
        )
        made = client.make_credential(options.public_key)
        data = server.register_complete(state, made)
        assert verify.calls >= 1  # type: ignore[attr-defined]
        assert data.credential_data is not None
        assert bytes(data.credential_data.aaguid) == AAGUID
        counters.append(data.counter)
        # sign in with that credential (allow list)
        options, state = server.authenticate_begin(
            [data.credential_data], user_verification="discouraged"
        )
        got = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, [data.credential_data], got)
        counters.append(got.response.authenticator_data.counter)
        assert got.response.authenticator_data.is_user_present()
    # the discoverable one signs in with no allow list and names the user
    options, state = server.authenticate_begin(user_verification="discouraged")
    selection = client.get_assertion(options.public_key)
    assertions = selection.get_assertions()
    assert [a.user["id"] for a in assertions] == [b"customer-1"]
    assert counters == sorted(set(counters)), "the signature counter must strictly increase"
    fido = card.applet(Ctap2Applet)
    assert isinstance(fido, Ctap2Applet)
    assert fido.display.shown.count(f"FIDO: {RP_ID}") >= 5  # the button was asked every time


def test_wrong_rp_finds_no_credentials(
    insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd
) -> None:
    insert(AutoApprove())
    ctap = Ctap2(_device(pcscd_vpcd))
    made = ctap.make_credential(
        b"\x01" * 32,
        {"id": RP_ID, "name": "Bank"},
        {"id": b"u1", "name": "alice"},
        [{"type": "public-key", "alg": -7}],
    )
    cred = made.auth_data.credential_data
    assert cred is not None
    allow = [{"type": "public-key", "id": cred.credential_id}]
    with pytest.raises(CtapError) as exc:
        ctap.get_assertion("evil.example", b"\x02" * 32, allow)
    assert exc.value.code == CtapError.ERR.NO_CREDENTIALS
    # the same credential still works for its own RP, and a forged id for it does not
    assert ctap.get_assertion(RP_ID, b"\x02" * 32, allow).credential["id"] == cred.credential_id
    forged = bytearray(cred.credential_id)
    forged[20] ^= 1
    with pytest.raises(CtapError) as exc:
        ctap.get_assertion(RP_ID, b"\x02" * 32, [{"type": "public-key", "id": bytes(forged)}])
    assert exc.value.code == CtapError.ERR.NO_CREDENTIALS


def test_user_presence_refused_on_the_button(
    insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd, token_dir: Path
) -> None:
    card = insert(AutoReject())
    ctap = Ctap2(_device(pcscd_vpcd))
    with pytest.raises(CtapError) as exc:
        ctap.make_credential(
            b"\x01" * 32,
            {"id": RP_ID},
            {"id": b"u1", "name": "alice"},
            [{"type": "public-key", "alg": -7}],
            options={"rk": True},
        )
    assert exc.value.code == CtapError.ERR.OPERATION_DENIED
    fido = card.applet(Ctap2Applet)
    assert isinstance(fido, Ctap2Applet)
    assert fido.state.credentials == [] and fido.state.sign_count == 0  # nothing was made
    assert "FIDO: bank.example" in fido.display.shown
    # and through Fido2Client the refusal surfaces as a client error
    client = Fido2Client(
        _device(pcscd_vpcd), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin(None)
    )
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Bank", id=RP_ID))
    options, _ = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"u2", name="bob"), user_verification="discouraged"
    )
    with pytest.raises(ClientError):
        client.make_credential(options.public_key)


def test_pin_set_change_retries_exact(
    insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd
) -> None:
    card = insert(AutoApprove())
    pin = ClientPin(Ctap2(_device(pcscd_vpcd)))
    assert pin.get_pin_retries()[0] == 8
    pin.set_pin(PIN)
    assert pin.ctap.get_info().options["clientPin"] is True
    for left in (7, 6):
        with pytest.raises(CtapError) as exc:
            pin.get_pin_token("wrong-pin")
        assert exc.value.code == CtapError.ERR.PIN_INVALID
        assert pin.get_pin_retries() == (left, False)
    with pytest.raises(CtapError) as exc:
        pin.get_pin_token("wrong-pin")
    assert exc.value.code == CtapError.ERR.PIN_AUTH_BLOCKED  # third in a row
    assert pin.get_pin_retries() == (5, True)
    with pytest.raises(CtapError) as exc:  # even the right PIN waits for a power cycle
        pin.get_pin_token(PIN)
    assert exc.value.code == CtapError.ERR.PIN_AUTH_BLOCKED
    assert pin.get_pin_retries()[0] == 5  # and that refusal spent no try

    _power_cycle(pcscd_vpcd, card)
    pin = ClientPin(Ctap2(_device(pcscd_vpcd)))
    assert pin.get_pin_retries() == (5, False)
    with pytest.raises(CtapError) as exc:
        pin.change_pin("wrong-pin", "new-pin-1")
    assert exc.value.code == CtapError.ERR.PIN_INVALID
    assert pin.get_pin_retries()[0] == 4
    pin.change_pin(PIN, "new-pin-1")
    assert pin.get_pin_retries()[0] == 8  # a right PIN restores all tries
    with pytest.raises(CtapError):
        pin.get_pin_token(PIN)  # the old PIN is gone
    token = pin.get_pin_token(
        "new-pin-1", ClientPin.PERMISSION.GET_ASSERTION | ClientPin.PERMISSION.MAKE_CREDENTIAL
    )
    assert len(token) == 32
    with pytest.raises(CtapError) as exc:  # permissions the applet does not grant
        pin.get_pin_token("new-pin-1", ClientPin.PERMISSION.CREDENTIAL_MGMT)
    assert exc.value.code == CtapError.ERR.UNAUTHORIZED_PERMISSION


def test_user_verification_with_the_pin(
    insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd
) -> None:
    insert(AutoApprove())
    ClientPin(Ctap2(_device(pcscd_vpcd))).set_pin(PIN)
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Bank", id=RP_ID))
    client = Fido2Client(
        _device(pcscd_vpcd), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin(PIN)
    )
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"u3", name="carol"),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    data = server.register_complete(state, client.make_credential(options.public_key))
    assert data.is_user_verified()
    assert data.credential_data is not None
    options, state = server.authenticate_begin(
        [data.credential_data], user_verification=UserVerificationRequirement.REQUIRED
    )
    got = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [data.credential_data], got)
    assert got.response.authenticator_data.is_user_verified()
    # with a PIN set, making a credential without it is refused
    with pytest.raises(CtapError) as exc:
        Ctap2(_device(pcscd_vpcd)).make_credential(
            b"\x01" * 32,
            {"id": RP_ID},
            {"id": b"u4", "name": "dave"},
            [{"type": "public-key", "alg": -7}],
        )
    assert exc.value.code == CtapError.ERR.PUAT_REQUIRED


def test_reset_erases_credentials_and_pin(
    insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd
) -> None:
    card = insert(AutoApprove())
    ctap = Ctap2(_device(pcscd_vpcd))
    made = ctap.make_credential(
        b"\x01" * 32,
        {"id": RP_ID},
        {"id": b"u1", "name": "alice"},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True},
    )
    ClientPin(ctap).set_pin(PIN)
    before = made.auth_data.counter
    _power_cycle(pcscd_vpcd, card)  # reset is allowed only just after power-up
    ctap = Ctap2(_device(pcscd_vpcd))
    ctap.reset()
    info = ctap.get_info()
    assert info.options["clientPin"] is False
    cred = made.auth_data.credential_data
    assert cred is not None
    with pytest.raises(CtapError) as exc:
        ctap.get_assertion(RP_ID, b"\x02" * 32)  # the discoverable credential is gone
    assert exc.value.code == CtapError.ERR.NO_CREDENTIALS
    with pytest.raises(CtapError) as exc:  # and its id no longer unwraps
        ctap.get_assertion(RP_ID, b"\x02" * 32, [{"type": "public-key", "id": cred.credential_id}])
    assert exc.value.code == CtapError.ERR.NO_CREDENTIALS
    again = ctap.make_credential(
        b"\x01" * 32, {"id": RP_ID}, {"id": b"u1"}, [{"type": "public-key", "alg": -7}]
    )
    assert again.auth_data.counter > before  # the counter survives a reset


def test_the_token_application_still_answers_beside_fido(
    insert: Callable[..., AppletRouter], pcscd_vpcd: PcscdVpcd
) -> None:
    """One reader, two applications by AID: the bank token and FIDO take turns."""
    from ebank_auth.usbkey.protocol import AID
    from ebank_auth.usbkey.transport.pcsc import open_reader

    insert(AutoApprove())
    Ctap2(_device(pcscd_vpcd)).get_info()
    _close_devices()
    with open_reader(pcscd_vpcd.readers[0]) as conn:
        out = conn.transmit(bytes((0x00, 0xA4, 0x04, 0x00, len(AID))) + AID)
        assert out[-2:] == b"\x90\x00"
    assert Ctap2(_device(pcscd_vpcd)).get_info().aaguid == AAGUID
