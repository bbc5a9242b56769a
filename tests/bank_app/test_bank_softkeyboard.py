"""The bank app's side of the browser soft keyboard (issue 12): the exact form the
client script posts (``sk_keystrokes`` as one JSON list), the CSRF-checked switch to the
system keyboard, and the binding of a keyboard session to the browser session it was
issued to.  The real-browser runs are in ``test_browser_app.py``."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.softkeyboard import KeyboardClient
from ebank_auth.store import store_key

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def open_keyboard(b: Any) -> dict[str, Any]:
    view: dict[str, Any] = b.get("/softkeyboard/session").get_json()
    return view


def labels(b: Any, session_id: str) -> dict[str, str]:
    raw = b.services.store.get(store_key("sk", "sess", session_id))
    return {label: key_id for key_id, label in json.loads(raw)["map"].items()}


def typed(view: dict[str, Any], by_label: dict[str, str] | None, text: str) -> dict[str, str]:
    """The fields the browser client posts for ``text`` typed on ``view``."""
    client = KeyboardClient(view)
    for ch in text:
        if by_label is None:
            client.type_char(ch)
        else:
            client.press(by_label[ch])
    return {
        "sk_session": view["session_id"],
        "sk_keystrokes": json.dumps([c.hex() for c in client.ciphertexts]),
        "sk_commitment": client.commitment().hex(),
        "sk_switched": "0",
    }


def meta_token(b: Any) -> str:
    m = CSRF_META.search(b.get("/login/password").get_data(as_text=True))
    assert m, "no csrf-token meta on the password page"
    return m.group(1)


def switch(b: Any, session_id: Any, *, token: str | None) -> Any:
    headers = {"X-CSRF-Token": token} if token is not None else {}
    return b.client.post("/softkeyboard/switch", json={"session_id": session_id}, headers=headers)


def session_factors(b: Any) -> list[str]:
    cookie = b.client.get_cookie("bank_session")
    raw = b.services.store.get(f"bank:sess:{cookie.value}")
    factors: list[str] = json.loads(raw)["data"]["factors"]
    return factors


def start_login(b: Any) -> None:
    r = b.post("/login", {"username": b.demo["username"]})
    assert r.status_code == 302


def test_json_list_of_keystrokes_logs_in(customer: Any) -> None:
    b = customer
    start_login(b)
    view = open_keyboard(b)
    r = b.post("/login/password", typed(view, labels(b, view["session_id"]), b.new_password))
    assert r.status_code == 302 and r.location.endswith("/login/code")
    assert session_factors(b) == ["soft_keyboard_password"]


def test_other_keystroke_encodings_are_refused(customer: Any) -> None:
    """Only what the client sends is accepted: a repeated field, comma-separated hex,
    a JSON string or object, non-hex or upper-case entries all get the generic login
    error and count as a failed attempt nowhere (the password is never checked)."""
    b = customer
    start_login(b)
    for bad in (
        lambda ks: ks,  # repeated field (a list posted as several values)
        lambda ks: ",".join(ks),
        lambda ks: json.dumps(",".join(ks)),
        lambda ks: json.dumps({"0": ks[0]}),
        lambda ks: json.dumps([k.upper() for k in ks]),
        lambda ks: json.dumps([*ks[:-1], "zz"]),
        lambda ks: json.dumps([*ks, 7]),
        lambda ks: "",
    ):
        view = open_keyboard(b)
        fields: dict[str, Any] = typed(view, labels(b, view["session_id"]), b.new_password)
        fields["sk_keystrokes"] = bad(json.loads(fields["sk_keystrokes"]))
        r = b.post("/login/password", fields, form_url="/login/password")
        assert r.status_code == 401, fields["sk_keystrokes"]
    assert b.services.lockout.status(b.demo["username"]).failures == 0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.one_of(st.text(max_size=200), st.lists(st.text(max_size=20), max_size=5)))
def test_arbitrary_keystroke_fields_never_log_in(customer: Any, junk: Any) -> None:
    """Security invariant: whatever ``sk_keystrokes`` holds other than the client's own
    ciphertexts, the login step is refused (401) -- never a 5xx, never a success."""
    b = customer
    b.clock.offset += 61  # past the per-minute rate limits (the server's clock, no sleeping)
    start_login(b)
    view = open_keyboard(b)
    fields: dict[str, Any] = typed(view, labels(b, view["session_id"]), b.new_password)
    fields["sk_keystrokes"] = junk if isinstance(junk, str) else json.dumps(junk)
    assert b.post("/login/password", fields, form_url="/login/password").status_code == 401


def test_switch_needs_the_csrf_header(customer: Any) -> None:
    """Attack: a cross-site page makes the customer's browser switch its keyboard to the
    weaker system keyboard.  Without the page's CSRF token the switch is refused and the
    soft keyboard session still works."""
    b = customer
    start_login(b)
    view = open_keyboard(b)
    r = switch(b, view["session_id"], token=None)
    assert r.status_code == 400
    r = b.post("/login/password", typed(view, labels(b, view["session_id"]), b.new_password))
    assert r.status_code == 302 and session_factors(b) == ["soft_keyboard_password"]


def test_switched_login_is_flagged_whatever_the_form_says(customer: Any) -> None:
    """Attack: after the switch the page (or a man in the browser) posts ``sk_switched=0``
    to pass the system keyboard off as the soft one.  The server takes the switch from the
    keyboard session it holds: the policy sees a plain PASSWORD."""
    b = customer
    start_login(b)
    token = meta_token(b)
    view = open_keyboard(b)
    r = switch(b, view["session_id"], token=token)
    assert r.status_code == 200, r.get_data(as_text=True)
    system = r.get_json()
    assert system["mode"] == "system" and system["session_id"] != view["session_id"]
    fields = typed(system, None, b.new_password)
    assert fields["sk_switched"] == "0"
    r = b.post("/login/password", fields, form_url="/login/password")
    assert r.status_code == 302 and r.location.endswith("/login/code")
    assert session_factors(b) == ["password"]


def test_old_soft_session_is_dead_after_the_switch(customer: Any) -> None:
    b = customer
    start_login(b)
    token = meta_token(b)
    view = open_keyboard(b)
    by_label = labels(b, view["session_id"])
    assert switch(b, view["session_id"], token=token).status_code == 200
    r = b.post("/login/password", typed(view, by_label, b.new_password))
    assert r.status_code == 401


def test_switch_of_another_browsers_keyboard_is_refused(customer: Any) -> None:
    """Attack: someone who learns the keyboard session id of another customer's page
    (a shoulder-surfed devtools panel, a proxy log) switches it with their own session
    and CSRF token: the victim's secure keyboard would be closed and replaced by a
    system-keyboard session handed to the attacker.  Only the keyboard session issued to
    the same browser session may be switched; the victim's keyboard keeps working."""
    victim = customer
    start_login(victim)
    view = open_keyboard(victim)
    attacker = type(victim)(victim.app)
    start_login(attacker)
    open_keyboard(attacker)  # the attacker's own keyboard: the refusal is the binding
    r = switch(attacker, view["session_id"], token=meta_token(attacker))
    assert r.status_code == 400
    r = victim.post(
        "/login/password", typed(view, labels(victim, view["session_id"]), victim.new_password)
    )
    assert r.status_code == 302 and session_factors(victim) == ["soft_keyboard_password"]


def test_keystrokes_of_a_keyboard_issued_elsewhere_are_refused(customer: Any) -> None:
    """The keyboard session is bound to the browser session: ciphertexts typed on a
    keyboard another browser session opened are refused, and a keyboard is submitted once."""
    b = customer
    other = type(b)(b.app)
    start_login(b)
    view = open_keyboard(other)
    fields = typed(view, labels(other, view["session_id"]), b.new_password)
    assert b.post("/login/password", fields, form_url="/login/password").status_code == 401


def test_switch_refuses_malformed_bodies(customer: Any) -> None:
    b = customer
    start_login(b)
    token = meta_token(b)
    open_keyboard(b)
    for body in (None, [], {"session_id": 5}, {"session_id": "00" * 16}, {}):
        r = b.client.post("/softkeyboard/switch", json=body, headers={"X-CSRF-Token": token})
        assert r.status_code == 400, body
        assert r.is_json and "刷新页面" in r.get_json()["error"]
