"""Login of the reference bank app: anti-phishing phrase, generic errors, lockout with a
notice, first-login password change, SMS step-up, session rotation and idle logout."""

from __future__ import annotations

import json
import re
from typing import Any

from ebank_auth.softkeyboard import KeyboardClient
from ebank_auth.store import store_key


def test_phrase_shown_after_username_before_password(browser: Any) -> None:
    demo = browser.demo
    r = browser.post("/login", {"username": demo["username"]})
    assert r.status_code == 302 and r.location.endswith("/login/password")
    page = browser.get("/login/password").get_data(as_text=True)
    assert demo["phrase"] in page
    # the password is typed on the soft keyboard: no named password field to fill in clear
    assert "data-softkeyboard" in page and 'class="sk-mask"' in page
    assert 'name="password"' not in page


def test_unknown_username_gets_a_stable_decoy_phrase(browser: Any) -> None:
    browser.post("/login", {"username": "nobody-here"})
    first = browser.get("/login/password").get_data(as_text=True)
    browser.post("/login", {"username": "nobody-here"})
    second = browser.get("/login/password").get_data(as_text=True)
    phrase = re.search(r'id="anti-phishing-phrase">([^<]+)<', first)
    assert phrase and phrase.group(1) in second
    assert all(c["phrase"] not in first for c in [browser.demo])


def test_first_login_forces_password_change_then_sms_code(browser: Any) -> None:
    demo = browser.demo
    browser.post("/login", {"username": demo["username"]})
    r = browser.post("/login/password", {"password": demo["password"]}, form_url="/login/password")
    assert r.status_code == 302 and r.location.endswith("/login/change")
    assert browser.get("/accounts").status_code == 302  # not logged in yet
    # complexity rules apply to the customer's own choice
    weak = browser.post(
        "/login/change",
        {
            "old_password": demo["password"],
            "new_password": "abc12345",
            "confirm_password": "abc12345",
        },
    )
    assert weak.status_code == 400
    r = browser.post(
        "/login/change",
        {
            "old_password": demo["password"],
            "new_password": browser.new_password,
            "confirm_password": browser.new_password,
        },
    )
    assert r.status_code == 302 and r.location.endswith("/login/code")
    r = browser.post("/login/code", {"code": browser.last_code()}, form_url="/login/code")
    assert r.status_code == 302 and r.location.endswith("/accounts")
    assert browser.get("/accounts").status_code == 200
    # the old password no longer works
    fresh = type(browser)(browser.app)
    fresh.post("/login", {"username": demo["username"]})
    r = fresh.post("/login/password", {"password": demo["password"]}, form_url="/login/password")
    assert r.status_code == 401


def test_errors_are_generic_whichever_factor_is_wrong(customer: Any) -> None:
    b = customer
    b.post("/login", {"username": b.demo["username"]})
    wrong_pw = b.post("/login/password", {"password": "Wrong!Pass99"}, form_url="/login/password")
    other = type(b)(b.app)
    other.post("/login", {"username": "no-such-user"})
    unknown = other.post(
        "/login/password", {"password": "Wrong!Pass99"}, form_url="/login/password"
    )
    third = type(b)(b.app)
    third.post("/login", {"username": b.demo["username"]})
    third.post("/login/password", {"password": b.new_password}, form_url="/login/password")
    wrong_code = third.post("/login/code", {"code": "000000"}, form_url="/login/code")

    def error(r: Any) -> str:
        m = re.search(r'class="error" role="alert">([^<]+)<', r.get_data(as_text=True))
        assert m, r.get_data(as_text=True)
        return m.group(1)

    assert wrong_pw.status_code == unknown.status_code == wrong_code.status_code == 401
    assert error(wrong_pw) == error(unknown) == error(wrong_code)


def test_five_wrong_passwords_lock_for_the_day_and_notify(customer: Any) -> None:
    b = customer
    before = len(b.services.outbox.messages())
    b.post("/login", {"username": b.demo["username"]})
    for _ in range(5):
        r = b.post("/login/password", {"password": "Wrong!Pass99"}, form_url="/login/password")
        assert r.status_code == 401
    notices = b.services.outbox.messages()[before:]
    assert len(notices) == 1 and notices[0].purpose != "login"
    # now even the right password is refused, and no second notice is sent
    r = b.post("/login/password", {"password": b.new_password}, form_url="/login/password")
    assert r.status_code == 403
    assert "locked" in r.get_data(as_text=True)
    assert len(b.services.outbox.messages()) == before + 1
    assert b.services.lockout.status(b.demo["username"]).locked


def test_session_id_rotates_at_login(customer: Any) -> None:
    b = customer
    b.post("/login", {"username": b.demo["username"]})
    before = b.client.get_cookie("bank_session").value
    b.login()
    after = b.client.get_cookie("bank_session").value
    assert before != after
    assert b.services.store.get(f"bank:sess:{before}") is None
    cookie = b.client.get_cookie("bank_session")
    assert cookie.http_only and cookie.same_site == "Strict"


def test_idle_logout_enforced_by_the_server(customer: Any, clock: Any) -> None:
    b = customer
    b.login()
    assert b.get("/accounts").status_code == 200
    clock.offset += 299
    assert b.get("/accounts").status_code == 200  # activity restarts the idle timer
    clock.offset += 301
    r = b.get("/accounts")
    assert r.status_code == 302 and r.location.endswith("/login")
    page = b.get("/login").get_data(as_text=True)
    assert 'id="idle-logout"' in page  # the customer is told why
    assert b.get("/accounts").status_code == 302
    assert 'id="idle-logout"' not in b.get("/login").get_data(as_text=True)


def test_csrf_refused(customer: Any) -> None:
    """Attack: a cross-site form posts the login/transfer without the page's token."""
    b = customer
    r = b.client.post("/login", data={"username": b.demo["username"]})
    assert r.status_code == 400
    assert "CSRF" in r.get_data(as_text=True)
    b.login()
    r = b.client.post("/transfer", data={"payer": b.demo["account"], "amount": "1"})
    assert r.status_code == 400


def test_security_headers(browser: Any) -> None:
    r = browser.get("/login")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in r.get_data(as_text=True)
    assert " style=" not in r.get_data(as_text=True)


def soft_keyboard_fields(b: Any, password: str) -> dict[str, Any]:
    """Type ``password`` on the served layout as the browser client does: the key ids
    are looked up by label (a person reads them off the SVG; the test reads the
    session's map), each press SM2-encrypted to the server's key."""
    view = b.get("/softkeyboard/session").get_json()
    raw = b.services.store.get(store_key("sk", "sess", view["session_id"]))
    by_label = {label: key_id for key_id, label in json.loads(raw)["map"].items()}
    client = KeyboardClient(view)
    for ch in password:
        client.press(by_label[ch])
    return {
        "sk_session": view["session_id"],
        "sk_keystrokes": json.dumps([c.hex() for c in client.ciphertexts]),
        "sk_commitment": client.commitment().hex(),
    }


def test_softkeyboard_session_endpoint(browser: Any) -> None:
    view = browser.get("/softkeyboard/session").get_json()
    assert set(view) >= {"session_id", "svg", "public_key_der_hex", "commit_key_hex", "key_ids"}
    assert "<svg" in view["svg"]
    assert browser.get("/softkeyboard/session").get_json()["session_id"] != view["session_id"]


def test_login_through_the_soft_keyboard(customer: Any) -> None:
    b = customer
    b.post("/login", {"username": b.demo["username"]})
    fields = soft_keyboard_fields(b, b.new_password)
    r = b.post("/login/password", fields, form_url="/login/password")
    assert r.status_code == 302 and r.location.endswith("/login/code")
    r = b.post("/login/code", {"code": b.last_code()}, form_url="/login/code")
    assert r.location.endswith("/accounts")
    # the audit trail never holds the password
    assert b.new_password not in json.dumps(list(b.services.audit.records()), ensure_ascii=False)


def test_soft_keyboard_wrong_or_replayed_keystrokes_fail_generically(customer: Any) -> None:
    """Attack: the encrypted keystrokes of a session are replayed, or a prefix is sent."""
    b = customer
    b.post("/login", {"username": b.demo["username"]})
    fields = soft_keyboard_fields(b, b.new_password)
    assert b.post("/login/password", fields, form_url="/login/password").status_code == 302
    other = type(b)(b.app)
    other.post("/login", {"username": b.demo["username"]})
    replay = other.post("/login/password", fields, form_url="/login/password")
    assert replay.status_code == 401
    fresh = soft_keyboard_fields(other, b.new_password)
    prefix = {**fresh, "sk_keystrokes": json.dumps(json.loads(fresh["sk_keystrokes"])[:-1])}
    assert other.post("/login/password", prefix, form_url="/login/password").status_code == 401


def test_malformed_usernames_get_the_generic_error(browser: Any) -> None:
    for bad in ["", "a:b", "x" * 65, "<script>", "zhang san", "用户\x00"]:
        r = browser.post("/login", {"username": bad})
        assert r.status_code == 401, bad
        assert "<script>" not in r.get_data(as_text=True)


def test_logout_is_not_undone_by_a_request_in_flight(customer: Any) -> None:
    """Attack: a request that was already running when the customer logged out (a slow
    page, a script-driven fetch, an attacker holding the stolen cookie) saves its copy of
    the session afterwards and so brings the logged-out session back to life."""
    import flask

    b = customer
    b.login()
    sid = b.client.get_cookie("bank_session").value
    iface = b.app.session_interface
    with b.app.test_request_context("/accounts", headers={"Cookie": f"bank_session={sid}"}):
        inflight = iface.open_session(b.app, flask.request)
    assert inflight["user"] == b.demo["username"]
    b.post("/logout", {}, form_url="/accounts")
    assert b.services.store.get(f"bank:sess:{sid}") is None
    with b.app.test_request_context("/accounts"):
        iface.save_session(b.app, inflight, b.app.response_class())
    assert b.services.store.get(f"bank:sess:{sid}") is None
    stolen = type(b)(b.app)
    stolen.client.set_cookie("bank_session", sid)
    assert stolen.get("/accounts").status_code == 302
