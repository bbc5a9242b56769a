"""The CTAP2 applet in process: ISO 7816 framing, refusals, anti-tearing, state at rest.

python-fido2's ``Ctap2``/``ClientPin`` are the host; :class:`InProcessReader` stands in for
pcscd + vpcd only (the same behaviours run through a real pcscd in test_ctap2_pcsc.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from fido2.ctap import CtapError
from fido2.ctap2.pin import ClientPin

from ebank_auth.usbkey.emulator.applets import AppletRouter
from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.ctap2_applet import FIDO_AID, Ctap2Applet
from ebank_auth.usbkey.emulator.ctap2_state import FIDO_STATE_FILENAME
from ebank_auth.usbkey.emulator.display import AutoApprove, NoButton

from .conftest import RP_ID, InProcessReader, in_process

PIN = "2468"
ES256 = [{"type": "public-key", "alg": -7}]


def _card(state: Path | None = None, **kw: object) -> tuple[AppletRouter, Ctap2Applet]:
    fido = Ctap2Applet(state, kw.pop("display", AutoApprove()), **kw)  # type: ignore[arg-type]
    return AppletRouter([fido]), fido


def _apdu(card: AppletRouter, hex_apdu: str) -> bytes:
    return card.process_apdu(bytes.fromhex(hex_apdu.replace(" ", "")))


def _select(card: AppletRouter) -> bytes:
    return _apdu(card, "00A40400 08" + FIDO_AID.hex())


def test_select_and_iso_framing() -> None:
    card, _ = _card()
    assert _select(card) == b"FIDO_2_0\x90\x00"
    assert _apdu(card, "00A4040C 08" + FIDO_AID.hex()) == b"\x90\x00"  # no answer asked
    assert _apdu(card, "00010000 00")[-2:] == b"\x6d\x00"  # no CTAP1/U2F
    assert _apdu(card, "80110000")[-2:] == b"\x69\x85"  # never a pending 9100
    assert _apdu(card, "84100000 01 04 00")[-2:] == b"\x6e\x00"
    assert _apdu(card, "80100100 01 04 00")[-2:] == b"\x6a\x86"
    assert _apdu(card, "80100000 05 04")[-2:] == b"\x67\x00"  # Lc longer than the data
    assert _apdu(card, "00C00000 00")[-2:] == b"\x69\x85"  # nothing to get


def test_ctap_status_for_bad_messages() -> None:
    card, _ = _card()
    _select(card)
    assert _apdu(card, "80100000 01 42 00") == b"\x01\x90\x00"  # unknown command
    assert _apdu(card, "80100000 03 01 1817 00") == b"\x12\x90\x00"  # non-canonical CBOR
    assert _apdu(card, "80100000 02 01 80 00") == b"\x11\x90\x00"  # params not a map
    assert _apdu(card, "80100000 02 01 a0 00") == b"\x14\x90\x00"  # parameters missing
    assert _apdu(card, "80100000 02 04 a0 00") == b"\x03\x90\x00"  # getInfo takes none


def test_long_messages_chain_and_long_answers_use_get_response() -> None:
    card, _ = _card()
    ctap = in_process(card)
    reader = ctap.device._conn
    assert isinstance(reader, InProcessReader)
    exclude = [{"type": "public-key", "id": bytes([i]) * 61} for i in range(6)]
    made = ctap.make_credential(
        b"\x01" * 32, {"id": RP_ID}, {"id": b"u"}, ES256, exclude_list=exclude
    )
    assert made.fmt == "packed" and made.att_stmt["x5c"]
    assert any(a[0] == 0x90 for a in reader.sent), "the request was sent in a chain"
    assert any(a[:2] == b"\x00\xc0" for a in reader.sent), "the answer came by GET RESPONSE"


def test_excluded_credential_and_unsupported_algorithm() -> None:
    card, _ = _card()
    ctap = in_process(card)
    made = ctap.make_credential(b"\x01" * 32, {"id": RP_ID}, {"id": b"u"}, ES256)
    cred = made.auth_data.credential_data
    assert cred is not None
    with pytest.raises(CtapError) as exc:
        ctap.make_credential(
            b"\x01" * 32,
            {"id": RP_ID},
            {"id": b"u"},
            ES256,
            exclude_list=[{"type": "public-key", "id": cred.credential_id}],
        )
    assert exc.value.code == CtapError.ERR.CREDENTIAL_EXCLUDED
    with pytest.raises(CtapError) as exc:
        ctap.make_credential(
            b"\x01" * 32, {"id": RP_ID}, {"id": b"u"}, [{"type": "public-key", "alg": -8}]
        )
    assert exc.value.code == CtapError.ERR.UNSUPPORTED_ALGORITHM


def test_no_button_press_times_out_and_changes_nothing() -> None:
    card, fido = _card(display=NoButton())
    with pytest.raises(CtapError) as exc:
        in_process(card).make_credential(
            b"\x01" * 32, {"id": RP_ID}, {"id": b"u"}, ES256, options={"rk": True}
        )
    assert exc.value.code == CtapError.ERR.USER_ACTION_TIMEOUT
    assert fido.state.sign_count == 0 and fido.state.credentials == []


def test_several_discoverable_credentials_come_one_by_one() -> None:
    card, _ = _card()
    ctap = in_process(card)
    for user in (b"a", b"b", b"c"):
        ctap.make_credential(b"\x01" * 32, {"id": RP_ID}, {"id": user}, ES256, options={"rk": True})
    ctap.make_credential(
        b"\x01" * 32, {"id": "other.example"}, {"id": b"x"}, ES256, options={"rk": True}
    )
    got = ctap.get_assertions(RP_ID, b"\x02" * 32)
    assert sorted(a.user["id"] for a in got) == [b"a", b"b", b"c"]
    counters = [a.auth_data.counter for a in got]
    assert counters == sorted(set(counters))
    # registering the same user again replaces its credential
    ctap.make_credential(b"\x01" * 32, {"id": RP_ID}, {"id": b"a"}, ES256, options={"rk": True})
    assert len(ctap.get_assertions(RP_ID, b"\x02" * 32)) == 3


def test_a_power_loss_after_the_decrement_keeps_the_try_spent(tmp_path: Path) -> None:
    crash = {"on": False}

    def hook(point: str) -> None:
        if crash["on"] and point == "pin-decremented":
            raise RuntimeError("power lost")

    card, fido = _card(tmp_path / "t", fault_hook=hook)
    pin = ClientPin(in_process(card))
    pin.set_pin(PIN)
    crash["on"] = True
    with pytest.raises(CtapError):
        pin.get_pin_token(PIN)  # even the right PIN: the token died before comparing
    assert fido.state.pin_retries == 7
    card.power_off()
    card.power_on()
    crash["on"] = False
    pin = ClientPin(in_process(card))
    assert pin.get_pin_retries()[0] == 7
    pin.get_pin_token(PIN)
    assert pin.get_pin_retries()[0] == 8


def test_malformed_pin_hash_spends_no_try() -> None:
    card, fido = _card()
    ctap = in_process(card)
    pin = ClientPin(ctap)
    pin.set_pin(PIN)
    key_agreement, _shared = pin._get_shared_secret()
    with pytest.raises(CtapError) as exc:
        ctap.client_pin(2, ClientPin.CMD.GET_TOKEN_USING_PIN_LEGACY, key_agreement=key_agreement,
                        pin_hash_enc=b"\x00" * 48)  # fmt: skip
    assert exc.value.code == CtapError.ERR.INVALID_PARAMETER
    assert fido.state.pin_retries == 8


def test_blocked_at_zero_until_reset() -> None:
    card, fido = _card()
    pin = ClientPin(in_process(card))
    pin.set_pin(PIN)
    codes = []
    for _ in range(8):
        if fido._consecutive_fails >= 3:
            card.power_off()
            card.power_on()
            pin = ClientPin(in_process(card))
        with pytest.raises(CtapError) as exc:
            pin.get_pin_token("0000")
        codes.append(exc.value.code)
    assert codes[-1] == CtapError.ERR.PIN_BLOCKED and fido.state.pin_retries == 0
    card.power_off()
    card.power_on()
    pin = ClientPin(in_process(card))
    with pytest.raises(CtapError) as exc:
        pin.get_pin_token(PIN)
    assert exc.value.code == CtapError.ERR.PIN_BLOCKED
    in_process(card).reset()
    assert fido.state.pin_retries == 8 and fido.state.pin_hash is None


def test_reset_only_just_after_power_up() -> None:
    now = [1000.0]
    card, _ = _card(clock=lambda: now[0])
    card.power_on()
    now[0] += 11
    with pytest.raises(CtapError) as exc:
        in_process(card).reset()
    assert exc.value.code == CtapError.ERR.NOT_ALLOWED
    card.power_off()
    card.power_on()
    in_process(card).reset()


def test_state_at_rest_is_sealed_and_shared(tmp_path: Path) -> None:
    state = tmp_path / "token"
    card = token_card(state, AutoApprove())
    pin = ClientPin(in_process(card))
    pin.set_pin(PIN)
    doc = json.loads((state / FIDO_STATE_FILENAME).read_text())
    pin_hash = base64.b64encode(hashlib.sha256(PIN.encode()).digest()[:16]).decode()
    raw = (state / FIDO_STATE_FILENAME).read_text()
    assert pin_hash not in raw and 'wrap_key"' not in raw and doc["pin_retries"] == 8
    assert set(doc) >= {"wrap_key_sealed", "attestation_key_sealed", "pin_hash_sealed"}
    # a second token object on the same directory (another process) sees the spent try
    other = token_card(state, AutoApprove())
    with pytest.raises(CtapError):
        pin.get_pin_token("9999")
    assert ClientPin(in_process(other)).get_pin_retries()[0] == 7
