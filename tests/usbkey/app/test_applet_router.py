"""The software token routes APDUs to its applets by AID (ISO 7816-4 SELECT by DF name)."""

from __future__ import annotations

import pytest

from ebank_auth.errors import ConfigurationError, EbankAuthError
from ebank_auth.usbkey.emulator.applets import AppletRouter
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.protocol import AID

from .conftest import USER_PIN, open_session


class EchoApplet:
    """A second applet that answers its SELECT with 'ok' and echoes the INS of other commands."""

    def __init__(self, aid: bytes) -> None:
        self.aid = aid
        self.deselected = 0
        self.resets = 0

    def atr(self) -> bytes:
        return b"\x3b\x00"

    def power_on(self) -> None:
        self.resets += 1

    def power_off(self) -> None:
        self.resets += 1

    def reset(self) -> None:
        self.resets += 1

    def deselect(self) -> None:
        self.deselected += 1

    def process_apdu(self, apdu: bytes) -> bytes:
        if apdu[1] == 0xA4:
            return b"ok\x90\x00"
        return bytes((apdu[1],)) + b"\x90\x00"


PIV_LIKE = bytes.fromhex("A000000308000010000100")


def select(aid: bytes) -> bytes:
    return bytes((0x00, 0xA4, 0x04, 0x00, len(aid))) + aid


def test_partial_select_reaches_the_applet_and_commands_follow_it() -> None:
    other = EchoApplet(PIV_LIKE)
    router = AppletRouter([SoftToken(None, AutoApprove()), other])
    assert router.process_apdu(select(bytes.fromhex("A000000308"))) == b"ok\x90\x00"
    assert router.selected is other
    assert router.process_apdu(bytes.fromhex("00CB3FFF00")) == b"\xcb\x90\x00"


def test_unknown_aid_answers_6a82_and_selects_nothing() -> None:
    other = EchoApplet(PIV_LIKE)
    router = AppletRouter([SoftToken(None, AutoApprove()), other])
    router.process_apdu(select(PIV_LIKE))
    assert router.process_apdu(select(bytes.fromhex("A0000006472F0001"))) == b"\x6a\x82"
    assert router.selected is None
    assert other.deselected == 1


def test_selecting_another_applet_ends_the_token_session() -> None:
    """A verified PIN does not survive a detour through another applet."""
    router = AppletRouter([SoftToken(None, AutoApprove()), EchoApplet(PIV_LIKE)])
    session = open_session(router)
    session.verify_pin(USER_PIN)
    assert router.process_apdu(select(PIV_LIKE)) == b"ok\x90\x00"
    with pytest.raises(EbankAuthError):
        session.generate_key()  # the channel and the verified PIN are gone


def test_the_token_application_is_found_by_its_aid() -> None:
    router = AppletRouter([EchoApplet(PIV_LIKE), SoftToken(None, AutoApprove())])
    out = router.process_apdu(select(AID))
    assert out.endswith(b"\x90\x00") and out != b"ok\x90\x00"
    assert isinstance(router.selected, SoftToken)


def test_overlapping_aids_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="overlap"):
        AppletRouter([EchoApplet(b"\xa0\x00\x00\x03\x08"), EchoApplet(PIV_LIKE)])
    with pytest.raises(ConfigurationError):
        AppletRouter([])


def test_power_reaches_every_applet() -> None:
    other = EchoApplet(PIV_LIKE)
    router = AppletRouter([SoftToken(None, AutoApprove()), other])
    router.process_apdu(select(PIV_LIKE))
    router.reset()
    assert router.selected is None and other.resets == 1
