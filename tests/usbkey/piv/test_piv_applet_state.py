"""The PIV applet's persistent state: anti-tearing PIN/PUK counters (Hypothesis), malformed
input changes nothing, state shared by two applet objects on one directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.usbkey.emulator.factory import Manufacturer
from ebank_auth.usbkey.emulator.piv_applet import PivApplet
from ebank_auth.usbkey.piv_protocol import DEFAULT_PIN, pad_pin

VERIFY = bytes.fromhex("00200080")


class PowerLoss(Exception):
    pass


def _verify(card: PivApplet, pin: str) -> int:
    resp = card.process_apdu(VERIFY + b"\x08" + pad_pin(pin))
    return int.from_bytes(resp[-2:], "big")


def _tries(card: PivApplet) -> int:
    return card.state.pin.remaining


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    guesses=st.lists(
        st.tuples(st.from_regex(r"[0-9]{6,8}", fullmatch=True), st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_never_more_than_three_wrong_guesses_even_with_power_loss(
    guesses: list[tuple[str, bool]],
) -> None:
    """Whatever the guesses and wherever the power fails after the counter was written, the
    card accepts at most 3 wrong PINs, and a lost command never gives a try back."""
    cut = {"on": False}

    def hook(point: str) -> None:
        if cut["on"]:
            raise PowerLoss(point)

    card = PivApplet(None, fault_hook=hook)
    wrong_seen = 0
    for pin, power_fails in guesses:
        before = _tries(card)
        cut["on"] = power_fails
        sw = _verify(card, pin)
        cut["on"] = False
        after = _tries(card)
        if power_fails and before > 0:
            assert sw == 0x6F00 and after == before - 1  # spent, never handed back
            continue
        if pin == DEFAULT_PIN and before > 0:
            assert sw == 0x9000 and after == 3
            wrong_seen = 0
            continue
        if before == 0:
            assert sw == 0x6983 and after == 0
            continue
        wrong_seen += 1
        assert sw == 0x63C0 | after and after == before - 1
        assert wrong_seen <= 3
    assert 0 <= _tries(card) <= 3


@pytest.mark.parametrize(
    "apdu",
    [
        "0020008007" + "31323334353637",  # 7 bytes
        "00200080083132FF3334353637",  # FF inside the PIN
        "002000800831323334FFFFFFFF",  # 4 characters
        "0020008108" + "3132333435363738",  # PUK cannot be verified
        "0024008010" + "313233343536FFFF" + "31323334FFFFFFFF",  # new PIN too short
        "002C008010" + "3132333435363738" + "31323334FFFFFFFF",
        "0087039B057C028100FF",  # trailing garbage after the template
        "00DB3FFF055C035FC102",  # no 53 content
        "00CB3FFF045C025FC1",  # two-byte tag
    ],
)
def test_malformed_input_changes_no_state(apdu: str) -> None:
    card = PivApplet(None)
    before = card.state.to_json(_sealer(card))
    resp = card.process_apdu(bytes.fromhex(apdu))
    assert resp[-2:] != b"\x90\x00"
    assert card.state.to_json(_sealer(card)) == before


def _sealer(card: PivApplet):  # type: ignore[no-untyped-def]
    return card._file._sealer()


def test_two_applets_on_one_directory_share_the_counter(tmp_path: Path) -> None:
    maker = Manufacturer.in_memory()
    a = PivApplet(tmp_path, maker)
    b = PivApplet(tmp_path, maker)
    assert a.serial == b.serial
    assert _verify(a, "000000") == 0x63C2
    assert _verify(b, "000000") == 0x63C1  # b sees the try a spent
    assert _verify(a, DEFAULT_PIN) == 0x9000
    doc = json.loads((tmp_path / "piv.json").read_text())
    text = json.dumps(doc)
    assert "0102030405060708" not in text  # the management key is sealed
    assert doc["pin"]["remaining"] == 3


def test_corrupt_state_is_refused_with_a_status_word(tmp_path: Path) -> None:
    card = PivApplet(tmp_path, Manufacturer.in_memory())
    (tmp_path / "piv.json").write_text("{not json")
    assert card.process_apdu(VERIFY)[-2:] == b"\x65\x81"
