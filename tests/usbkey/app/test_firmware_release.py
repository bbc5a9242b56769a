"""Firmware authenticity (issue 10 item 4): the allow-list is released by the manufacturer once,
never by the token that is being checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2
from ebank_auth.errors import ConfigurationError, EncodingError, TokenNotGenuine
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.connect import resolve_trust
from ebank_auth.usbkey.emulator import card as card_module
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.emulator.factory import Manufacturer, factory_dir_for, release
from ebank_auth.usbkey.manufacturer import FirmwareAllowList, FirmwareEntry
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection


def _open(token: SoftToken, state: Path) -> TokenSession:
    return TokenSession.open(InProcessConnection(token), resolve_trust(software_token_state=state))


def test_patched_firmware_is_not_genuine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: patch the software token's code (say, remove the PIN lockout) and restart it on
    the same state.  The token used to re-sign its own allow-list with the hash of whatever code
    it ran at start, so the patched card reported genuine.  It must now only report the measured
    hash, which is on no list the manufacturer released."""
    state = tmp_path / "token"
    honest = SoftToken(state, AutoApprove())
    with _open(honest, state) as session:
        assert session.attestation is not None and session.attestation.genuine
    patched_image = bytes(reversed(card_module.firmware_hash()))
    monkeypatch.setattr(card_module, "firmware_hash", lambda: patched_image)
    patched = SoftToken(state, AutoApprove())  # restart with the modified firmware
    assert patched.device_info.firmware_hash == patched_image
    with pytest.raises(TokenNotGenuine, match="allow-list"):
        _open(patched, state)


def test_starting_a_token_never_changes_the_allow_list(tmp_path: Path) -> None:
    """The token only reads its maker's published list: restarts leave it byte for byte."""
    state = tmp_path / "token"
    SoftToken(state, AutoApprove())
    published = (state / "manufacturer" / "firmware-allowlist.json").read_bytes()
    SoftToken(state, AutoApprove())
    assert (state / "manufacturer" / "firmware-allowlist.json").read_bytes() == published


def test_root_key_is_not_in_the_token_state(tmp_path: Path) -> None:
    state = tmp_path / "token"
    SoftToken(state, AutoApprove())
    assert not list(state.rglob("root-key.pem"))
    key = factory_dir_for(state) / "root-key.pem"
    assert key.is_file() and key.stat().st_mode & 0o077 == 0


def test_release_then_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit release (the manufacturer's act) lists a new image; a revocation withdraws
    it again, and the revoked image stays refused even if an old entry still names it."""
    state = tmp_path / "token"
    SoftToken(state, AutoApprove())
    maker = Manufacturer.load(factory_dir_for(state))
    new_image = bytes(32)
    monkeypatch.setattr(card_module, "firmware_hash", lambda: new_image)
    release(maker, "1.0.1", new_image)
    maker.publish_to(state)
    upgraded = SoftToken(state, AutoApprove(), firmware_version="1.0.1")
    with _open(upgraded, state) as session:
        assert session.attestation is not None and session.attestation.genuine
    seq = maker.allowlist.sequence
    maker.revoke_firmware(new_image)
    maker.publish_to(state)
    assert maker.allowlist.sequence == seq + 1
    with pytest.raises(TokenNotGenuine, match="revoked"):
        _open(upgraded, state)
    with pytest.raises(ConfigurationError, match="revoked"):
        release(maker, "1.0.1", new_image)
    stale = dataclasses.replace(
        maker.allowlist, entries=(*maker.allowlist.entries, FirmwareEntry("1.0.1", "00" * 32))
    ).sign(_key(maker))
    with pytest.raises(TokenNotGenuine, match="revoked"):
        _open_with(upgraded, TrustConfig((maker.root,), stale))


def _key(maker: Manufacturer) -> sm2.SM2PrivateKey:
    assert maker.key is not None
    return maker.key


def _open_with(token: SoftToken, trust: TrustConfig) -> TokenSession:
    return TokenSession.open(InProcessConnection(token), trust)


def test_allow_list_of_another_model_or_issuer_refused(tmp_path: Path) -> None:
    """Attack: present a list the same root signed for another model (or naming another issuing
    CA) whose entries happen to include this firmware.  The list must match the device
    certificate's issuer and model (OU)."""
    token = SoftToken(None, AutoApprove())
    maker = token.manufacturer
    for change in ({"model": "other model"}, {"issuer": "CN=Another CA,C=CN"}):
        other = dataclasses.replace(maker.allowlist, **change).sign(_key(maker))  # type: ignore[arg-type]
        with pytest.raises(TokenNotGenuine, match="not for this token"):
            _open_with(token, TrustConfig((maker.root,), other))


def test_older_allow_list_refused_when_a_newer_was_seen() -> None:
    token = SoftToken(None, AutoApprove())
    lst = token.manufacturer.allowlist
    trust = TrustConfig((token.manufacturer.root,), lst, min_allowlist_sequence=lst.sequence + 1)
    with pytest.raises(TokenNotGenuine, match="older"):
        _open_with(token, trust)


def test_version_1_allow_list_refused_with_advice() -> None:
    with pytest.raises(EncodingError, match="emulator release"):
        FirmwareAllowList.loads('{"format": "ebank-auth-firmware-allowlist-v1", "entries": []}')


@given(st.binary(min_size=32, max_size=32))
@settings(max_examples=25, deadline=None)
def test_only_released_images_are_genuine(image: bytes) -> None:
    """Property: a token reports genuine exactly when its measured image was released and not
    revoked by the manufacturer."""
    token = SoftToken(None, AutoApprove(), firmware_image_hash=image)
    maker = token.manufacturer
    released = any(e.sm3 == image.hex() for e in maker.allowlist.entries)
    try:
        _open_with(token, TrustConfig((maker.root,), maker.allowlist)).close()
        genuine = True
    except TokenNotGenuine:
        genuine = False
    assert genuine == released
