"""Fixtures for the PIV tests: the software token's PIV applet in-process and behind pcscd."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.display import AutoReject
from ebank_auth.usbkey.emulator.piv_applet import PivApplet
from ebank_auth.usbkey.transport.inprocess import InProcessConnection
from ebank_auth.usbkey.vendor.piv import PivSession
from plugins.pcscd import pcscd_vpcd  # noqa: F401


@pytest.fixture
def card() -> PivApplet:
    """A memory-only software token; the PIV applet sits behind its applet router."""
    router = token_card(None, AutoReject())
    applet = router.applet(PivApplet)
    assert isinstance(applet, PivApplet)
    applet.router = router  # type: ignore[attr-defined]
    return applet


@pytest.fixture
def piv(card: PivApplet) -> Iterator[PivSession]:
    session = PivSession(InProcessConnection(card.router))  # type: ignore[attr-defined]
    try:
        yield session
    finally:
        session.close()
