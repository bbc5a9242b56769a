"""Hypothesis properties of the CTAP2 applet's two counters (security invariants).

* the FIDO PIN retry counter never lets more wrong guesses be *answered* than the limit — 8 in
  all, 3 in a row per power cycle — whatever mix of wrong and right PINs, power cycles and power
  losses after the decrement comes;
* the signature counter strictly increases over every signature the token gives out, across
  discoverable and wrapped credentials, refusals, power cycles and resets.

The host is python-fido2 over the in-process reader (conftest; a real pcscd would make hundreds
of examples too slow and adds nothing to these state machines).
"""

from __future__ import annotations

import pytest
from fido2.ctap import CtapError
from fido2.ctap2.pin import ClientPin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.usbkey.emulator.applets import AppletRouter
from ebank_auth.usbkey.emulator.ctap2_applet import Ctap2Applet
from ebank_auth.usbkey.emulator.display import CallbackDisplay, DisplayChoice

from .conftest import RP_ID, in_process

PIN = "1357"
ES256 = [{"type": "public-key", "alg": -7}]
_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(st.lists(st.sampled_from(["wrong", "right", "cycle", "crash"]), min_size=1, max_size=24))
def test_pin_guesses_never_exceed_the_limit(steps: list[str]) -> None:
    crash = {"on": False}

    def hook(point: str) -> None:
        if crash["on"]:
            raise RuntimeError("power lost after the decrement")

    fido = Ctap2Applet(None, CallbackDisplay(lambda t, s: DisplayChoice.APPROVE), fault_hook=hook)
    card = AppletRouter([fido])
    pin = ClientPin(in_process(card))
    pin.set_pin(PIN)

    spent_since_success = 0  # tries consumed (answered wrong guesses and power losses)
    answered_this_cycle = 0  # wrong guesses answered since the last power cycle or success
    for step in steps:
        before = fido.state.pin_retries
        if step == "cycle":
            card.power_off()
            card.power_on()
            pin = ClientPin(in_process(card))
            answered_this_cycle = 0
            continue
        crash["on"] = step == "crash"
        try:
            pin.get_pin_token(PIN if step in ("right", "crash") else "0000")
            ok = True
        except CtapError as exc:
            ok = False
            code = exc.code
        finally:
            crash["on"] = False
        after = fido.state.pin_retries
        if step == "crash":
            assert not ok
            spent_since_success += before - after
            card.power_off()  # the power loss is a power cycle
            card.power_on()
            pin = ClientPin(in_process(card))
            answered_this_cycle = 0
        elif ok:
            assert step == "right" and before > 0
            spent_since_success = 0
            answered_this_cycle = 0
        else:
            if before - after == 1:
                assert step == "wrong"
                spent_since_success += 1
                answered_this_cycle += 1
            else:  # refused without a comparison
                assert before == after
                assert code in (CtapError.ERR.PIN_BLOCKED, CtapError.ERR.PIN_AUTH_BLOCKED)
        assert spent_since_success <= 8
        assert answered_this_cycle <= 3
        assert after == 8 - spent_since_success  # persisted, exact
        if after == 0:
            with pytest.raises(CtapError) as blocked:
                pin.get_pin_token(PIN)
            assert blocked.value.code == CtapError.ERR.PIN_BLOCKED


@_settings
@given(
    st.lists(
        st.sampled_from(["make", "make_rk", "get", "get_rk", "silent", "refuse", "cycle", "reset"]),
        min_size=1,
        max_size=16,
    )
)
def test_sign_counter_strictly_increases(steps: list[str]) -> None:
    approve = {"on": True}
    fido = Ctap2Applet(
        None,
        CallbackDisplay(
            lambda t, s: DisplayChoice.APPROVE if approve["on"] else DisplayChoice.REJECT
        ),
    )
    card = AppletRouter([fido])
    ctap = in_process(card)
    seen: list[int] = []
    creds: list[bytes] = []
    for step in steps:
        approve["on"] = step != "refuse"
        try:
            if step in ("make", "make_rk", "refuse"):
                made = ctap.make_credential(
                    b"\x01" * 32,
                    {"id": RP_ID},
                    {"id": b"u"},
                    ES256,
                    options={"rk": step == "make_rk"},
                )
                seen.append(made.auth_data.counter)
                assert made.auth_data.credential_data is not None
                creds.append(made.auth_data.credential_data.credential_id)
            elif step in ("get", "silent") and creds:
                allow = [{"type": "public-key", "id": c} for c in creds]
                got = ctap.get_assertion(RP_ID, b"\x02" * 32, allow, options={"up": step == "get"})
                seen.append(got.auth_data.counter)
            elif step == "get_rk":
                seen.extend(a.auth_data.counter for a in ctap.get_assertions(RP_ID, b"\x02" * 32))
            elif step == "cycle":
                card.power_off()
                card.power_on()
            elif step == "reset":
                card.power_on()
                ctap.reset()
                creds.clear()
        except CtapError as exc:  # a refused button, or no discoverable credential yet
            assert exc.code in (CtapError.ERR.OPERATION_DENIED, CtapError.ERR.NO_CREDENTIALS)
            assert (exc.code == CtapError.ERR.OPERATION_DENIED) == (step == "refuse")
        assert seen == sorted(set(seen)), "a signature counter went back or repeated"
        if seen:
            assert fido.state.sign_count == seen[-1]
