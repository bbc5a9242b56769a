"""Persistent state: atomic writes, survives restarts, corruption refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebank_auth.errors import EncodingError, PinIncorrect
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.emulator.state import STATE_FILENAME, StateFile

from .conftest import USER_PIN, open_session


def test_state_survives_restart(state_dir: Path) -> None:
    t1 = SoftToken(state_dir, AutoApprove(), retry_limit=4)
    s = open_session(t1)
    s.verify_pin(USER_PIN)
    pub = s.generate_key().public_key_der
    with pytest.raises(PinIncorrect):
        s.verify_pin("000000")
    t2 = SoftToken(state_dir, AutoApprove())
    s2 = open_session(t2)
    assert s2.pin_status().remaining == 3
    assert s2.public_key().public_key_der == pub
    assert t2.serial == t1.serial


def test_no_temp_files_left_and_private_mode(state_dir: Path) -> None:
    t = SoftToken(state_dir, AutoApprove())
    s = open_session(t)
    for _ in range(3):
        s.verify_pin(USER_PIN)
    leftovers = [p.name for p in state_dir.iterdir() if p.name.startswith(".token-state")]
    assert leftovers == []
    assert (state_dir / STATE_FILENAME).stat().st_mode & 0o077 == 0


def test_corrupt_state_refused_not_reset(state_dir: Path) -> None:
    SoftToken(state_dir, AutoApprove())
    path = state_dir / STATE_FILENAME
    path.write_text("{not json")
    with pytest.raises(EncodingError):
        SoftToken(state_dir, AutoApprove())


@pytest.mark.parametrize(
    ("field", "value"),
    [("remaining", 11), ("max_retries", 11), ("max_retries", 0), ("remaining", -1)],
)
def test_out_of_range_counters_refused(state_dir: Path, field: str, value: int) -> None:
    SoftToken(state_dir, AutoApprove())
    path = state_dir / STATE_FILENAME
    doc = json.loads(path.read_text())
    doc["user_pin"][field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(EncodingError):
        StateFile(state_dir).load()


def test_pin_verifier_not_the_pin(state_dir: Path) -> None:
    SoftToken(state_dir, AutoApprove())
    text = (state_dir / STATE_FILENAME).read_text()
    assert USER_PIN not in text
