"""Passkeys in the reference bank app, through Flask's test client (issue 14, item 5).

The browser and its authenticator are the WebAuthn tests' software authenticator
(tests/webauthn/softauthn.py): a fake on purpose, because only a fake lets a test send a
wrong origin, drop the UV flag or move the signature counter back.  The real browser with
Chromium's virtual authenticator drives the same pages in test_browser_passkeys.py.

The test client talks to ``http://localhost`` (port 80): the demo default takes the
WebAuthn origin from such a request, so the authenticator works as ``http://localhost``.
The app's clock is moved to daytime in Beijing (the night rule would ask for an SMS code
at every login whatever the passkey)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.bank_browser import to_daytime
from webauthn.softauthn import SoftAuthenticator

ORIGIN = "http://localhost"
META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
PAYEE = {"payee_account": "6217000011112222333", "payee_name": "王五"}


def csrf(b: Any, url: str) -> str:
    m = META_CSRF.search(b.get(url).get_data(as_text=True))
    assert m, url
    return m.group(1)


def begin(b: Any, url: str, page: str, body: dict[str, Any] | None = None) -> Any:
    """passkey.js's begin request: JSON with the page's CSRF token in X-CSRF-Token."""
    return b.client.post(url, json=body or {}, headers={"X-CSRF-Token": csrf(b, page)})


def events(b: Any, name: str) -> list[dict[str, Any]]:
    return [r for r in b.services.audit.records() if r["event"] == name]


def login_with_sms(b: Any) -> None:
    """The first login on this browser: SMS code (new device), which binds the device."""
    b.after_sms_cooldown()
    r = b.login()
    assert r.status_code == 302 and r.location.endswith("/accounts"), r.get_data(as_text=True)


def register(b: Any, auth: SoftAuthenticator) -> str:
    """Settings -> Passkeys: SMS step-up, then the ceremony.  The new credential's id."""
    b.after_sms_cooldown()
    r = b.post("/passkeys/code", {}, form_url="/passkeys")
    assert r.status_code == 200 and "passkeys/verify" in r.get_data(as_text=True)
    r = b.post("/passkeys/verify", {"code": b.last_code()}, form_url="/passkeys")
    assert r.status_code == 200 and 'id="passkey-panel"' in r.get_data(as_text=True)
    r = begin(b, "/passkeys/register/begin", "/passkeys")
    assert r.status_code == 200, r.get_data(as_text=True)
    cred = auth.create(r.get_json()["options"])
    r = b.post(
        "/passkeys/register/complete", {"credential": json.dumps(cred)}, form_url="/passkeys"
    )
    assert r.status_code == 302 and r.location.endswith("/passkeys"), r.get_data(as_text=True)
    return str(cred["id"])


def password_step(b: Any, user: str | None = None) -> Any:
    b.post("/login", {"username": user or b.demo["username"]})
    return b.post("/login/password", {"password": b.new_password}, form_url="/login/password")


def passkey_second_factor(b: Any, auth: SoftAuthenticator, **get: Any) -> tuple[Any, dict]:
    """After the password: the passkey offered, its assertion posted.  (response, assertion)"""
    r = begin(b, "/login/passkey/begin", "/login/second")
    assert r.status_code == 200, r.get_data(as_text=True)
    assertion = auth.get(r.get_json()["options"], **get)
    page = b.post("/login/passkey", {"credential": json.dumps(assertion)}, form_url="/login/second")
    return page, assertion


@pytest.fixture
def enrolled(customer: Any) -> tuple[Any, SoftAuthenticator]:
    """A customer logged in once by SMS (device bound), with one passkey, logged out."""
    to_daytime(customer.clock)
    login_with_sms(customer)
    auth = SoftAuthenticator(ORIGIN)
    register(customer, auth)
    customer.post("/logout", {}, form_url="/accounts")
    return customer, auth


def test_registering_a_passkey_needs_an_sms_step_up(customer: Any) -> None:
    to_daytime(customer.clock)
    login_with_sms(customer)
    page = customer.get("/passkeys").get_data(as_text=True)
    assert 'id="passkey-none"' in page and 'id="passkey-start"' in page
    # no step-up yet: no options, nothing stored
    r = begin(customer, "/passkeys/register/begin", "/passkeys")
    assert r.status_code == 403 and "options" not in r.get_json()
    # a wrong code does not open the registration
    customer.after_sms_cooldown()
    customer.post("/passkeys/code", {}, form_url="/passkeys")
    r = customer.post("/passkeys/verify", {"code": "000000"}, form_url="/passkeys")
    assert r.status_code == 401
    assert begin(customer, "/passkeys/register/begin", "/passkeys").status_code == 403
    cred_id = register(customer, SoftAuthenticator(ORIGIN))
    page = customer.get("/passkeys").get_data(as_text=True)
    assert f'data-credential-id="{cred_id}"' in page and 'id="passkey-notice"' in page
    assert [e["outcome"] for e in events(customer, "passkey_registered")] == ["ok"]
    # the step-up is spent: a second passkey needs a new code
    assert begin(customer, "/passkeys/register/begin", "/passkeys").status_code == 403


def test_passkey_is_the_second_factor_after_the_password(enrolled: Any) -> None:
    b, auth = enrolled
    # nothing is offered before the password
    assert b.get("/login/second").status_code == 302
    sent = len(b.services.outbox.messages())
    r = password_step(b)
    assert r.status_code == 302 and r.location.endswith("/login/second"), r.get_data(True)
    assert len(b.services.outbox.messages()) == sent  # no SMS code sent: the passkey is offered
    r, _ = passkey_second_factor(b, auth)
    assert r.status_code == 302 and r.location.endswith("/accounts"), r.get_data(as_text=True)
    assert b.get("/accounts").status_code == 200
    logins = events(b, "passkey_login")
    assert logins[-1]["outcome"] == "ok"
    decision = [e for e in events(b, "policy_decision") if e["outcome"] == "allow"][-1]
    assert "login" in json.dumps(decision)


def test_the_customer_may_take_an_sms_code_instead(enrolled: Any) -> None:
    b, _ = enrolled
    password_step(b)
    b.after_sms_cooldown()
    r = b.post("/login/sms", {}, form_url="/login/second")
    assert r.status_code == 302 and r.location.endswith("/login/code")
    r = b.post("/login/code", {"code": b.last_code()}, form_url="/login/code")
    assert r.status_code == 302 and r.location.endswith("/accounts")


def test_passkey_failures_never_count_toward_the_password_lockout(enrolled: Any) -> None:
    b, auth = enrolled
    for _ in range(6):
        password_step(b)
        r, _ = passkey_second_factor(b, auth, origin="http://localhost:8666")
        assert r.status_code == 401
        assert "登录信息有误" in r.get_data(as_text=True)  # the generic login error
    assert b.services.lockout.status(b.demo["username"]).failures == 0
    reasons = [e["details"]["reason"] for e in events(b, "passkey_login")]
    assert reasons == ["origin"] * 6
    r, _ = passkey_second_factor(b, auth)  # still on the second step: the right passkey works
    assert r.status_code == 302 and r.location.endswith("/accounts")


def test_a_locked_customer_cannot_sign_in_with_a_passkey(enrolled: Any, app: Any) -> None:
    b, auth = enrolled
    password_step(b)  # this browser is at the second step ...
    other = type(b)(app)  # ... while someone else guesses the password five times
    for _ in range(5):
        other.post("/login", {"username": b.demo["username"]})
        other.post("/login/password", {"password": "Wrong-Pass-1"}, form_url="/login/password")
    assert b.services.lockout.status(b.demo["username"]).locked
    r, _ = passkey_second_factor(b, auth)
    assert r.status_code == 403
    assert b.get("/accounts").status_code == 302
    assert events(b, "passkey_login")[-1]["outcome"] == "locked"


def test_a_replayed_assertion_is_refused(enrolled: Any) -> None:
    b, auth = enrolled
    password_step(b)
    r, captured = passkey_second_factor(b, auth)
    assert r.location.endswith("/accounts")
    b.post("/logout", {}, form_url="/accounts")
    # the attacker's replay: a new login reaches the passkey step, and the captured assertion
    # is posted against the fresh challenge
    password_step(b)
    assert begin(b, "/login/passkey/begin", "/login/second").status_code == 200
    r = b.post("/login/passkey", {"credential": json.dumps(captured)}, form_url="/login/second")
    assert r.status_code == 401
    assert events(b, "passkey_login")[-1]["details"]["reason"] == "challenge"
    # posting again without a new ceremony: nothing to answer
    r = b.post("/login/passkey", {"credential": json.dumps(captured)}, form_url="/login/second")
    assert r.status_code == 302 and r.location.endswith("/login")
    assert b.get("/accounts").status_code == 302


def test_a_sign_counter_regression_blocks_the_passkey_and_tells_the_customer(
    enrolled: Any,
) -> None:
    b, auth = enrolled
    password_step(b)
    r, _ = passkey_second_factor(b, auth, counter=7)
    assert r.location.endswith("/accounts")
    b.post("/logout", {}, form_url="/accounts")
    password_step(b)
    r, _ = passkey_second_factor(b, auth, counter=3)  # a copy of the key, behind the original
    page = r.get_data(as_text=True)
    assert r.status_code == 401 and "cloned" in page
    clone = events(b, "passkey_clone_suspected")
    assert len(clone) == 1 and clone[0]["details"]["stored_count"] == "7"
    assert "passkey" in b.services.outbox.messages()[-1].text
    # blocked from now on: the next login is not offered the passkey, the page says why
    assert not b.services.has_passkeys(b.demo["username"])
    b.after_sms_cooldown()
    r = password_step(b)
    assert r.location.endswith("/login/code")
    b.post("/login/code", {"code": b.last_code()}, form_url="/login/code")
    assert 'class="passkey-row blocked"' in b.get("/passkeys").get_data(as_text=True)


def test_removing_a_passkey(enrolled: Any) -> None:
    b, auth = enrolled
    cred = next(iter(auth.creds))
    password_step(b)
    passkey_second_factor(b, auth)
    from ebank_auth.webauthn.registry import b64url

    r = b.post("/passkeys/remove", {"id": b64url(cred)}, form_url="/passkeys")
    assert r.status_code == 302
    assert b.services.passkeys(b.demo["username"]) == []
    assert [e["outcome"] for e in events(b, "passkey_removed")] == ["ok"]


def test_another_customers_passkey_is_refused(enrolled: Any, app: Any) -> None:
    b, auth = enrolled
    lisi = type(b)(app)
    lisi.services.change_password("lisi", "DemoPass2026", lisi.new_password)
    lisi.clock.offset += 61
    lisi.post("/login", {"username": "lisi"})
    lisi.post("/login/password", {"password": lisi.new_password}, form_url="/login/password")
    lisi.post("/login/code", {"code": lisi.last_code()}, form_url="/login/code")
    register(lisi, SoftAuthenticator(ORIGIN))
    lisi.post("/logout", {}, form_url="/accounts")
    password_step(lisi, "lisi")
    r = begin(lisi, "/login/passkey/begin", "/login/second")
    own = r.get_json()["options"]
    # zhangsan's passkey answers lisi's challenge
    zhang = next(iter(auth.creds))
    options = {**own, "allowCredentials": [{"type": "public-key", "id": _b64(zhang)}]}
    assertion = auth.get(options, credential_id=zhang)
    r = lisi.post("/login/passkey", {"credential": json.dumps(assertion)}, form_url="/login/second")
    assert r.status_code == 401
    assert events(b, "passkey_login")[-1]["details"]["reason"] == "unknown_credential"


def _b64(raw: bytes) -> str:
    from ebank_auth.webauthn.registry import b64url

    return b64url(raw)


def test_malformed_credentials_are_refused_without_touching_the_lockout(enrolled: Any) -> None:
    b, _ = enrolled
    for bad in ("", "[]", "{", json.dumps({"id": "x"}), "x" * 40000):
        password_step(b)
        assert begin(b, "/login/passkey/begin", "/login/second").status_code == 200
        r = b.post("/login/passkey", {"credential": bad}, form_url="/login/second")
        assert r.status_code in (401, 413), bad[:20]
    assert b.services.lockout.status(b.demo["username"]).failures == 0


def test_usernameless_is_offered_only_when_enabled(customer: Any) -> None:
    page = customer.get("/login").get_data(as_text=True)
    assert 'id="usernameless"' not in page
    r = begin(customer, "/login/passkey/begin", "/login")
    assert r.status_code == 400


@pytest.fixture
def usernameless(tmp_path: Path, clock: Any, browser: Any) -> Any:
    from app import create_app

    Browser = type(browser)  # conftest's test-client browser

    app = create_app(
        tmp_path / "state",
        argon2_memory_kib=1024,
        clock=clock,
        demo=True,
        passkey_usernameless=True,
    )
    app.config["TEST_CLOCK"] = clock
    b = Browser(app)
    b.services.change_password(b.demo["username"], b.demo["password"], b.new_password)
    return b


def test_usernameless_sign_in_then_the_password(usernameless: Any) -> None:
    b = usernameless
    to_daytime(b.clock)
    login_with_sms(b)
    auth = SoftAuthenticator(ORIGIN)
    register(b, auth)
    b.post("/logout", {}, form_url="/accounts")
    assert 'id="usernameless"' in b.get("/login").get_data(as_text=True)
    r = begin(b, "/login/passkey/begin", "/login")
    options = r.get_json()["options"]
    assert "allowCredentials" not in options or not options["allowCredentials"]
    assertion = auth.get(options)
    r = b.post("/login/passkey", {"credential": json.dumps(assertion)}, form_url="/login")
    assert r.status_code == 302 and r.location.endswith("/login/password")
    # the passkey named the customer: the phrase is shown, then the password follows
    page = b.get("/login/password").get_data(as_text=True)
    assert b.demo["phrase"] in page
    assert b.get("/accounts").status_code == 302  # a passkey alone never signs in
    r = b.post("/login/password", {"password": b.new_password}, form_url="/login/password")
    assert r.status_code == 302 and r.location.endswith("/accounts"), r.get_data(as_text=True)


def test_usernameless_passkey_of_a_locked_customer_is_refused(usernameless: Any) -> None:
    b = usernameless
    to_daytime(b.clock)
    login_with_sms(b)
    auth = SoftAuthenticator(ORIGIN)
    register(b, auth)
    b.post("/logout", {}, form_url="/accounts")
    for _ in range(5):
        b.post("/login", {"username": b.demo["username"]})
        b.post("/login/password", {"password": "Wrong-Pass-1"}, form_url="/login/password")
    r = begin(b, "/login/passkey/begin", "/login")
    assertion = auth.get(r.get_json()["options"])
    r = b.post("/login/passkey", {"credential": json.dumps(assertion)}, form_url="/login")
    assert r.status_code == 403
    assert b.services.lockout.status(b.demo["username"]).failures == 5  # untouched


def _start_transfer(b: Any, amount: str) -> Any:
    b.after_sms_cooldown()
    data = {"payer": b.demo["account"], "amount": amount, "memo": "", "password": b.new_password}
    return b.post("/transfer", {**data, **PAYEE})


def _tx_id(page: str) -> str:
    m = re.search(r'name="tx_id" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def test_small_transfer_confirmed_with_a_user_verified_passkey(enrolled: Any) -> None:
    b, auth = enrolled
    password_step(b)
    passkey_second_factor(b, auth)
    before = b.services.account(b.demo["account"]).balance
    sent = len(b.services.outbox.messages())
    page = _start_transfer(b, "300.00").get_data(as_text=True)
    assert 'id="passkey-panel"' in page and len(b.services.outbox.messages()) == sent
    tx_id = _tx_id(page)
    r = begin(b, "/transfer/passkey/begin", "/accounts", {"tx_id": tx_id})
    options = r.get_json()["options"]
    assert options["userVerification"] == "required"  # tier 1 takes passkey_uv only
    assertion = auth.get(options)
    form = {"tx_id": tx_id, "credential": json.dumps(assertion)}
    r = b.post("/transfer/passkey", form, form_url="/accounts")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert b.services.account(b.demo["account"]).balance == before - Decimal("300.00")


def test_small_transfer_refused_when_the_passkey_did_not_verify_the_customer(
    enrolled: Any,
) -> None:
    b, auth = enrolled
    password_step(b)
    passkey_second_factor(b, auth)
    before = b.services.account(b.demo["account"]).balance
    tx_id = _tx_id(_start_transfer(b, "300.00").get_data(as_text=True))
    r = begin(b, "/transfer/passkey/begin", "/accounts", {"tx_id": tx_id})
    assertion = auth.get(r.get_json()["options"], uv=False)
    form = {"tx_id": tx_id, "credential": json.dumps(assertion)}
    r = b.post("/transfer/passkey", form, form_url="/accounts")
    assert r.status_code == 401
    assert events(b, "passkey_login")[-1]["details"]["reason"] == "user_verification"
    assert b.services.account(b.demo["account"]).balance == before
    # the SMS code bound to the transaction is still there for the customer
    r = b.post("/transfer/sms", {"tx_id": tx_id}, form_url="/accounts")
    assert r.status_code == 200
    r = b.post("/transfer/confirm", {"tx_id": tx_id, "code": b.last_code()}, form_url="/accounts")
    assert r.status_code == 200 and b.services.account(b.demo["account"]).balance < before


def test_a_passkey_never_confirms_a_transfer_that_needs_binding(enrolled: Any) -> None:
    b, auth = enrolled
    password_step(b)
    passkey_second_factor(b, auth)
    page = _start_transfer(b, "6000.00").get_data(as_text=True)  # tier 2: bound factors only
    assert 'id="passkey-why"' in page and 'id="passkey-panel"' not in page
    tx_id = _tx_id(page)
    r = begin(b, "/transfer/passkey/begin", "/accounts", {"tx_id": tx_id})
    assert r.status_code == 403 and "options" not in r.get_json()


def test_passkeys_are_not_offered_on_an_ip_address(browser: Any) -> None:
    """Browsers refuse an IP address as an RP ID: at 127.0.0.1 the page says where to go."""
    b = browser
    b.services.change_password(b.demo["username"], b.demo["password"], b.new_password)
    to_daytime(b.clock)
    plain_open = b.client.open

    def at_ip(*args: Any, **kw: Any) -> Any:  # the page opened as http://127.0.0.1/...
        kw.setdefault("base_url", "http://127.0.0.1")
        return plain_open(*args, **kw)

    b.client.open = at_ip
    login_with_sms(b)
    page = b.get("/passkeys").get_data(as_text=True)
    assert 'id="passkey-unavailable"' in page and 'id="passkey-start"' not in page


def test_a_host_header_on_another_port_gets_no_passkey(app: Any) -> None:
    """Demo default: only localhost on the port the server listens on -- another local site
    relaying a sign-in with its own Host cannot make the server accept its origin."""
    services = app.extensions["bank"]
    assert services.passkey_origin("http", "localhost:8000", "8000") == "http://localhost:8000"
    assert services.passkey_origin("http", "localhost:9999", "8000") is None
    assert services.passkey_origin("http", "localhost", "80") == "http://localhost"
    assert services.passkey_origin("http", "127.0.0.1:8000", "8000") is None
    assert services.passkey_origin("http", "evil.example:8000", "8000") is None


def test_a_server_configured_for_another_origin_refuses(
    tmp_path: Path, clock: Any, browser: Any
) -> None:
    from app import create_app

    Browser = type(browser)  # conftest's test-client browser

    app = create_app(
        tmp_path / "state",
        argon2_memory_kib=1024,
        clock=clock,
        passkey_rp_id="localhost",
        passkey_origins=("http://localhost:8443",),
    )
    app.config["TEST_CLOCK"] = clock
    b = Browser(app)
    b.services.change_password(b.demo["username"], b.demo["password"], b.new_password)
    to_daytime(clock)
    login_with_sms(b)
    b.after_sms_cooldown()
    b.post("/passkeys/code", {}, form_url="/passkeys")
    b.post("/passkeys/verify", {"code": b.last_code()}, form_url="/passkeys")
    r = begin(b, "/passkeys/register/begin", "/passkeys")
    cred = SoftAuthenticator(ORIGIN).create(r.get_json()["options"])  # made at http://localhost
    r = b.post(
        "/passkeys/register/complete", {"credential": json.dumps(cred)}, form_url="/passkeys"
    )
    assert r.status_code == 400
    assert events(b, "passkey_registered")[-1]["details"]["reason"] == "origin"
    assert b.services.passkeys(b.demo["username"]) == []


def test_run_py_passes_the_passkey_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    run_py = Path(__file__).resolve().parents[2] / "examples" / "bank_app" / "run.py"
    spec = importlib.util.spec_from_file_location("bank_run", run_py)
    assert spec and spec.loader
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    seen: dict[str, Any] = {}

    class Started:
        def run(self, **kw: Any) -> None:
            seen["run"] = kw

    def fake_create_app(state: str, **kw: Any) -> Started:
        seen.update(kw)
        return Started()

    monkeypatch.setattr(run, "create_app", fake_create_app)
    argv = ["--rp-id", "bank.example", "--origin", "https://bank.example", "--passkey-usernameless"]
    assert run.main(argv) == 0
    assert seen["passkey_rp_id"] == "bank.example"
    assert seen["passkey_origins"] == ("https://bank.example",)
    assert seen["passkey_usernameless"] is True


def test_origins_without_an_rp_id_stop_the_app(tmp_path: Path) -> None:
    from app import create_app
    from wiring import errors

    with pytest.raises(errors.ConfigurationError, match="--rp-id"):
        create_app(tmp_path, argon2_memory_kib=1024, passkey_origins=("http://localhost:1",))
    with pytest.raises(errors.ConfigurationError, match="http"):  # the library's own check
        create_app(
            tmp_path,
            argon2_memory_kib=1024,
            passkey_rp_id="bank.example",
            passkey_origins=("http://bank.example",),
        )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.text(max_size=200),
        _JSON.map(json.dumps),
        # a real assertion with a signed part (or the credential it names) replaced; the
        # outer "id"/"type" and the optional userHandle are not signed and name nothing the
        # server relies on, so they are not varied here
        st.tuples(
            st.sampled_from(
                ["rawId", "response", "clientDataJSON", "authenticatorData", "signature"]
            ),
            _JSON,
        ),
    )
)
def test_any_posted_credential_fails_closed(enrolled: Any, body: Any) -> None:
    """Property: whatever the page posts as the credential -- text, any JSON, or a real
    assertion with a signed part or its credential id replaced -- the sign-in fails with the generic error (never a
    crash, never signed in) and the password lockout never moves."""
    b, auth = enrolled
    b.clock.offset += 4  # under the passkey rate limit (20 a minute per customer)
    if b.get("/login/second").status_code != 200:
        password_step(b)
    r = begin(b, "/login/passkey/begin", "/login/second")
    assert r.status_code == 200
    if isinstance(body, tuple):
        field, value = body
        real = auth.get(r.get_json()["options"])
        if field in ("rawId", "response"):
            real[field] = value
        else:
            real["response"][field] = value
        body = json.dumps(real)
    page = b.post("/login/passkey", {"credential": body}, form_url="/login/second")
    assert page.status_code == 401, page.get_data(as_text=True)
    assert b.get("/accounts").status_code == 302
    assert b.services.lockout.status(b.demo["username"]).failures == 0
