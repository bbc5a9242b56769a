"""Device authenticity and firmware integrity (UK-9)."""

from __future__ import annotations

import dataclasses

import pytest

from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import TokenNotGenuine
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.emulator.factory import Manufacturer
from ebank_auth.usbkey.manufacturer import FirmwareAllowList, FirmwareEntry
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import trust_for


def _open(token: SoftToken, trust: TrustConfig) -> TokenSession:
    return TokenSession.open(InProcessConnection(token), trust)


def test_genuine_token_accepted(token: SoftToken) -> None:
    s = _open(token, trust_for(token))
    assert s.attestation is not None and s.attestation.genuine


def test_unknown_manufacturer_refused(token: SoftToken) -> None:
    other = Manufacturer.create(None)
    with pytest.raises(TokenNotGenuine, match="manufacturer root"):
        _open(token, TrustConfig((other.root,), other.allowlist))


def test_no_trust_configured_refused(token: SoftToken) -> None:
    with pytest.raises(TokenNotGenuine):
        _open(token, TrustConfig())


def test_modified_firmware_refused() -> None:
    tampered = SoftToken(None, AutoApprove(), firmware_image_hash=bytes(32))
    with pytest.raises(TokenNotGenuine, match="allow-list"):
        _open(tampered, trust_for(tampered))


def test_forged_allowlist_refused(token: SoftToken) -> None:
    good = token.manufacturer.allowlist
    forged = FirmwareAllowList(
        good.manufacturer, (*good.entries, FirmwareEntry("6.6.6", "00" * 32)), good.signature
    )
    with pytest.raises(TokenNotGenuine, match="not signed"):
        _open(token, TrustConfig((token.manufacturer.root,), forged))


def test_allowlist_round_trip(token: SoftToken) -> None:
    text = token.manufacturer.allowlist.dumps()
    back = FirmwareAllowList.loads(text)
    back.verify([token.manufacturer.root])
    assert back == token.manufacturer.allowlist


def test_cloned_certificate_without_the_key_refused(token: SoftToken) -> None:
    """A token that copies a genuine device certificate cannot sign the handshake."""
    clone = SoftToken(None, AutoApprove())
    clone._save(  # persisted: the card re-reads its state for every command
        dataclasses.replace(
            clone._state, serial=token.serial, device_cert_der=token.state.device_cert_der
        )
    )
    clone._info = dataclasses.replace(clone._info, serial=token.serial)
    clone._info_bytes = clone._info.encode()
    with pytest.raises(TokenNotGenuine, match="possession"):
        _open(clone, trust_for(token))


def test_certificate_of_another_serial_refused(token: SoftToken) -> None:
    liar = SoftToken(None, AutoApprove())
    liar._info = dataclasses.replace(liar._info, serial="EBK000000000000")
    liar._info_bytes = liar._info.encode()
    with pytest.raises(TokenNotGenuine, match="serial"):
        _open(liar, trust_for(liar))


def test_dev_mode_reports_instead_of_refusing(token: SoftToken) -> None:
    s = _open(token, TrustConfig(require_genuine=False))
    assert s.attestation is not None and not s.attestation.genuine
    assert s.secure


def test_manufacturer_files_persist(tmp_path) -> None:  # type: ignore[no-untyped-def]
    t1 = SoftToken(tmp_path, AutoApprove())
    trust = TrustConfig.from_files(
        [tmp_path / "manufacturer" / "root.pem"],
        tmp_path / "manufacturer" / "firmware-allowlist.json",
    )
    _open(t1, trust)
    t2 = SoftToken(tmp_path, AutoApprove())
    assert t2.serial == t1.serial
    _open(t2, trust)
    root = x509.load_certificate((tmp_path / "manufacturer" / "root.pem").read_bytes())
    assert isinstance(root.public_key, sm2.SM2PublicKey)
