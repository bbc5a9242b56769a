"""The phone shield in the reference bank app (issue 13, item 6), through Flask's test client:
a real :class:`SoftwarePhone` (software keystore and attestation authority: phone hardware
cannot run here) speaks the phone-shield HTTP contract to the app's own routes
(``/phone-shield/v1/…``) through a second test client -- the same requests a phone sends over
the network.  Enrolment (password + SMS code, link, reference code, authorisation code by SMS,
attestation, certificate by the bank CA), transfers confirmed and rejected on the phone, a wrong
PIN counted by the bank, revocation, the daily limit per phone shield."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import ConfigurationError, DeviceRevoked, JointSignatureRefused
from ebank_auth.phone_shield.emulator import (
    ApiTransport,
    DeviceClaims,
    KdfCost,
    SoftwareAttestationAuthority,
    SoftwarePhone,
)
from ebank_auth.phone_shield.keydescription import SecurityLevel

NEW_PASSWORD = "Harbour7Lantern"  # as conftest.NEW_PASSWORD
Browser = Any  # conftest.Browser (conftest modules are not importable by name)
PIN = "246810"
LINK_RE = re.compile(r'id="phone-link">([^<]+)<')
REF_RE = re.compile(r'id="phone-reference">([^<]+)<')
AUTH_RE = re.compile(r"(?<!\d)(\d{8})(?!\d)")
TX_RE = re.compile(r'data-tx="([^"]+)"')
CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')


class FlaskPhoneApi:
    """The app's phone-shield routes as a ``PhoneShieldApi``-like ``handle``: every call is an
    HTTP request through Flask's test client (no cookies shared with the customer's browser),
    so the phone reaches exactly what a phone on the network reaches."""

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        self.sent: list[tuple[str, str, bytes]] = []

    def handle(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
        self.sent.append((method, path, body))
        if method == "GET":
            r = self.client.get(path)
        else:
            r = self.client.post(path, data=body, content_type="application/json")
        assert r.is_json, r.get_data(True)
        # the phone's API never gives the phone a browser's device cookie or a session
        assert not any(
            c.startswith(("bank_device=", "bank_session=")) and "Max-Age=0" not in c
            for c in r.headers.getlist("Set-Cookie")
        )
        return r.status_code, r.get_json()


@pytest.fixture
def authority() -> SoftwareAttestationAuthority:
    return SoftwareAttestationAuthority.create()


@pytest.fixture
def app(tmp_path: Path, clock: Any, authority: SoftwareAttestationAuthority) -> Any:
    from app import create_app

    root = tmp_path / "phone-root.der"
    root.write_bytes(authority.root_der())
    app = create_app(
        tmp_path / "state",
        argon2_memory_kib=1024,
        clock=clock,
        demo=True,
        phone_attestation_roots=(root,),
        phone_daily_limits={"trusted_environment": "20000.00", "strongbox": "100000.00"},
    )
    app.config["TEST_CLOCK"] = clock
    return app


def make_phone(
    app: Any, authority: SoftwareAttestationAuthority, claims: DeviceClaims | None = None
) -> tuple[SoftwarePhone, FlaskPhoneApi]:
    api = FlaskPhoneApi(app)
    phone = SoftwarePhone(
        None,
        authority=authority,
        claims=claims,
        transport=lambda url: ApiTransport(api),
        kdf_cost=KdfCost(1, 1024, 1),
        bank_root=app.extensions["bank"].ca.certificate,
    )
    return phone, api


def identity_step(b: Browser) -> tuple[str, str]:
    """Settings → Phone shield → start, then password + SMS code: (link, reference code)."""
    b.after_sms_cooldown()  # the login's code was sent moments ago
    r = b.post("/phone/start", {}, form_url="/phone")
    assert r.status_code == 200 and "phone-identity" in r.get_data(True), r.get_data(True)
    r = b.post(
        "/phone/identity", {"password": NEW_PASSWORD, "code": b.last_code()}, form_url="/phone"
    )
    page = r.get_data(as_text=True)
    assert r.status_code == 200, page
    link, ref = LINK_RE.search(page), REF_RE.search(page)
    assert link and ref, page
    assert 'id="phone-qr" src="data:image/svg+xml;base64,' in page
    return unescape(link.group(1)), ref.group(1)


def authorisation_code(b: Browser) -> str:
    sms = b.services.outbox.messages()[-1]
    assert sms.purpose == "phone-shield-authorisation"
    m = AUTH_RE.search(sms.text)
    assert m, sms.text
    return m.group(1)


def enrol(b: Browser, phone: SoftwarePhone) -> None:
    link, reference = identity_step(b)
    code = authorisation_code(b)
    assert code not in b.get("/phone").get_data(True)  # never on the bank's page
    offer = phone.open_link(link)
    assert offer.reference_code == reference  # the customer compares both screens
    assert not b.get("/phone/state").get_json()["enrolled"]
    phone.enrol(link, code, PIN)
    assert b.get("/phone/state").get_json()["enrolled"]


def start_transfer(b: Browser, amount: str, memo: str = "货款") -> Any:
    return b.post(
        "/transfer",
        {
            "payer": b.demo["account"],
            "payee_name": "王五",
            "payee_account": "6222020200777788889",
            "amount": amount,
            "memo": memo,
            "password": NEW_PASSWORD,
        },
    )


def poll(b: Browser, page: Any) -> tuple[str, Any]:
    """What phone.js does: POST the poll with the CSRF header, then open the result page."""
    html = page.get_data(as_text=True)
    tx_id, token = TX_RE.search(html), CSRF_META.search(html)
    assert tx_id and token, html
    r = b.client.post(
        "/transfer/phone/poll",
        json={"tx_id": tx_id.group(1)},
        headers={"X-CSRFToken": token.group(1)},
    )
    status = r.get_json()["status"]
    if status == "pending":
        return status, None
    return status, b.get("/transfer/phone/result")


def balance(b: Browser) -> Decimal:
    return b.services.account(b.demo["account"]).balance


def events(b: Browser) -> list[str]:
    return [r["event"] for r in b.services.audit.records()]


def test_enrol_from_the_settings_page(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    assert "phone-none" in b.get("/phone").get_data(True)
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    page = b.get("/phone").get_data(as_text=True)
    assert 'id="phone-record"' in page and "TEE" in page  # the attested hardware level
    rec = b.services.phone_shield_of(b.demo["username"])
    assert rec["level"] == "trusted_environment" and rec["state"] == "active"
    # the certificate: the bank CA's, for the customer the bank chose, digitalSignature
    cert = phone.certificate
    cert.verify_signed_by(b.services.ca.certificate)
    assert "zhangsan" in cert.subject
    assert "phone_shield_enrolled" in events(b)
    assert b.services.audit.check().ok


def test_strongbox_level_is_recorded_and_gets_its_limit(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority, DeviceClaims(security_level=SecurityLevel.STRONGBOX))
    enrol(b, phone)
    rec = b.services.phone_shield_of(b.demo["username"])
    assert rec["level"] == "strongbox" and rec["daily_limit"] == "100000.00"
    assert "StrongBox" in b.get("/phone").get_data(True)


def test_identity_step_refused_without_the_password_or_code(
    customer: Browser, authority: Any
) -> None:
    b = customer
    b.login()
    b.after_sms_cooldown()
    b.post("/phone/start", {}, form_url="/phone")
    r = b.post(
        "/phone/identity",
        {"password": "Wrong-Pass-1", "code": b.last_code()},
        form_url="/phone",
    )
    assert r.status_code == 401
    assert "phone-link" not in r.get_data(True)
    assert b.services.outbox.messages()[-1].purpose != "phone-shield-authorisation"
    # the enrolment is gone from the session: a second try must start again
    r = b.post("/phone/identity", {"password": NEW_PASSWORD, "code": "000000"}, form_url="/phone")
    assert r.status_code == 302


def test_the_link_names_the_public_url_never_a_host_the_client_chose(
    customer: Browser, tmp_path: Path, clock: Any, authority: Any
) -> None:
    b = customer
    # without --public-url the demo takes the request's URL, on loopback only (a client
    # chooses the Host it sends; the test client's cookies do not follow another Host, so
    # the wiring is asked directly)
    with pytest.raises(ConfigurationError, match="--public-url"):
        b.services.phone_server("http://bank.attacker.example/")
    assert b.services.phone_server("http://127.0.0.1:8000/").server_url == "http://127.0.0.1:8000"
    # configured: the link names the bank's public URL whatever the request's Host
    from app import create_app

    app = create_app(
        tmp_path / "public",
        argon2_memory_kib=1024,
        clock=clock,
        phone_url="https://bank.example/",
    )
    app.config["TEST_CLOCK"] = clock
    c = type(b)(app)
    c.services.change_password(c.demo["username"], c.demo["password"], NEW_PASSWORD)
    c.login()
    link, _ = identity_step(c)
    assert "server=https%3A%2F%2Fbank.example&" in link or "server=https://bank.example&" in link


def test_tier2_transfer_confirmed_on_the_phone(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    before = balance(b)
    page = start_transfer(b, "6000.00")
    assert page.status_code == 200 and "phone-confirm" in page.get_data(True)
    assert poll(b, page)[0] == "pending"
    pending = phone.pending()
    assert pending is not None and pending.transaction.amount == Decimal("6000.00")
    shown: list[str] = []
    assert phone.confirm(pending, pin=PIN, decide=lambda text: shown.append(text) or True) == (
        "signed"
    )
    assert "6,000.00" in shown[0]
    status, result = poll(b, page)
    assert status == "done" and result.status_code == 200, result.get_data(True)
    assert balance(b) == before - Decimal("6000.00")
    assert b.services.replay.seen(pending.transaction.tx_id)
    rec = b.services.phone_shield_of(b.demo["username"])
    assert rec["used_today"] == "6000.00"
    ev = events(b)
    assert ev.count("transfer_booked") == 1 and "phone_shield_confirmation_sent" in ev
    # the page polls again (a replayed poll): nothing more is booked
    status, _ = poll(b, page)
    assert status == "gone" and balance(b) == before - Decimal("6000.00")


def test_tier3_transfer_confirmed_on_the_phone(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority, DeviceClaims(security_level=SecurityLevel.STRONGBOX))
    enrol(b, phone)
    before = balance(b)
    page = start_transfer(b, "50000.00")
    assert "phone-confirm" in page.get_data(True)
    pending = phone.pending()
    assert pending is not None
    assert phone.confirm(pending, pin=PIN) == "signed"
    assert poll(b, page)[0] == "done"
    assert balance(b) == before - Decimal("50000.00")


def test_rejected_on_the_phone_nothing_is_booked(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    before = balance(b)
    page = start_transfer(b, "7000.00")
    pending = phone.pending()
    assert pending is not None
    assert phone.confirm(pending, pin=PIN, decide=lambda text: False) == "rejected"
    status, result = poll(b, page)
    assert status == "rejected" and 'id="cancelled"' in result.get_data(True)
    assert balance(b) == before
    assert "transfer_cancelled" in events(b)
    assert b.services.phone_shield_of(b.demo["username"])["used_today"] == "0.00"


def test_wrong_pin_is_counted_and_nothing_booked(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    before = balance(b)
    page = start_transfer(b, "6000.00")
    pending = phone.pending()
    assert pending is not None
    with pytest.raises(JointSignatureRefused):
        phone.confirm(pending, pin="135790")
    status, result = poll(b, page)
    assert status == "failed" and result.status_code == 403
    assert balance(b) == before
    assert b.services.phone_shield_of(b.demo["username"])["failures"] == 1
    # the right PIN next time: booked, and the count is reset by the valid signature
    page = start_transfer(b, "6000.00")
    pending = phone.pending()
    assert pending is not None and phone.confirm(pending, pin=PIN) == "signed"
    assert poll(b, page)[0] == "done"
    assert b.services.phone_shield_of(b.demo["username"])["failures"] == 0
    assert balance(b) == before - Decimal("6000.00")


def test_locked_phone_shield_is_not_offered(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    limit = b.services.phone_shield.settings.max_sign_failures
    for _ in range(limit):
        start_transfer(b, "6000.00")
        pending = phone.pending()
        assert pending is not None
        with pytest.raises(JointSignatureRefused):
            phone.confirm(pending, pin="135790")
    assert b.services.phone_shield_of(b.demo["username"])["state"] == "locked"
    page = start_transfer(b, "6000.00")  # falls back to the SMS code bound to the transfer
    assert "phone-confirm" not in page.get_data(True)


def test_revoked_phone_is_refused(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    before = balance(b)
    page = start_transfer(b, "6000.00")
    pending = phone.pending()
    assert pending is not None
    r = b.post("/phone/revoke", {}, form_url="/phone")
    assert r.status_code == 302
    assert "phone_shield_revoked" in events(b)
    assert b.services.phone_shield_of(b.demo["username"]) is None
    # the session opened before the revocation cannot complete: the server share is gone
    with pytest.raises(DeviceRevoked):
        phone.confirm(pending, pin=PIN)
    status, _ = poll(b, page)
    assert status != "done" and balance(b) == before
    with pytest.raises(DeviceRevoked):
        phone.pending()
    assert b.services.phone_shield.crl().is_revoked(phone.certificate.serial_number)
    # a new transfer is no longer offered to the phone
    page = start_transfer(b, "6000.00")
    assert "phone-confirm" not in page.get_data(True)


def test_back_office_lists_and_revokes_phone_shields(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    staff = type(b)(b.app)  # a second browser (conftest.Browser)
    # the staff sign-in needs the staff member's USB Key (tests/bank_app/test_bank_backoffice.py);
    # here the server-side session is given a signed-in staff member directly
    with staff.client.session_transaction() as s:
        s["staff"] = "admin"
    page = staff.get("/staff").get_data(as_text=True)
    assert 'id="revoke-phone-zhangsan"' in page and "TEE" in page
    r = staff.post("/staff/revoke-phone-shield", {"user": "zhangsan"}, form_url="/staff")
    assert r.status_code == 302
    assert 'id="revoke-phone-zhangsan"' not in staff.get("/staff").get_data(True)
    assert b.services.phone_shield_list() == []
    revoked = [r for r in b.services.audit.records() if r["event"] == "phone_shield_revoked"]
    assert revoked and "staff:admin" in json.dumps(revoked[-1], ensure_ascii=False)
    with pytest.raises(DeviceRevoked):
        phone.pending()


def test_daily_limit_per_phone_shield(customer: Browser, authority: Any) -> None:
    b = customer
    b.login()
    phone, _ = make_phone(b.app, authority)
    enrol(b, phone)
    before = balance(b)
    for amount in ("8000.00", "9000.00"):
        page = start_transfer(b, amount)
        pending = phone.pending()
        assert pending is not None and phone.confirm(pending, pin=PIN) == "signed"
        assert poll(b, page)[0] == "done"
    assert b.services.phone_shield_of(b.demo["username"])["used_today"] == "17000.00"
    # 17,000 + 6,000 > 20,000: refused before the phone is asked
    r = start_transfer(b, "6000.00")
    assert r.status_code == 403 and "20000.00" in r.get_data(True)
    assert phone.pending() is None
    # the check at booking is atomic too: a limit lowered while the phone confirms refuses it
    page = start_transfer(b, "2000.00")
    b.services.phone_daily_limits["trusted_environment"] = Decimal("18000.00")
    pending = phone.pending()
    assert pending is not None and phone.confirm(pending, pin=PIN) == "signed"
    status, result = poll(b, page)
    assert status == "error" and "18000.00" in result.get_data(True)
    assert balance(b) == before - Decimal("17000.00")
    assert "phone_shield_limit_refused" in events(b)
    # the next day the sum starts again
    b.clock.offset += 86400
    assert b.services.phone_shield_of(b.demo["username"])["used_today"] == "0.00"


def test_phone_api_is_csrf_exempt_but_replays_are_refused(
    customer: Browser, authority: Any
) -> None:
    b = customer
    b.login()
    phone, api = make_phone(b.app, authority)
    enrol(b, phone)
    phone.status()
    method, path, body = api.sent[-1]
    status, doc = api.handle(method, path, body)  # the same signed request again
    assert status == 409 and doc["error"]["type"] == "DeviceRequestRejected"
    # a page of the bank itself still needs its CSRF token
    assert b.client.post("/phone/revoke").status_code == 400


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    step=st.sampled_from(
        [
            "enrolments/" + "a" * 32 + "/attest",
            "enrolments/" + "a" * 32 + "/finish",
            "devices/" + "b" * 32 + "/pending",
            "sessions/" + "c" * 64 + "/sign",
            "sessions/" + "c" * 64 + "/result",
            "nowhere",
        ]
    ),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["device_id", "counter", "payload", "signature", "link_secret"]),
            st.one_of(st.text(max_size=40), st.integers(), st.none()),
        ).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_any_malformed_phone_request_is_refused_without_change(
    app: Any, step: str, body: bytes
) -> None:
    services = app.extensions["bank"]
    before = sum(1 for _ in services.audit.records())
    r = app.test_client().post(f"/phone-shield/v1/{step}", data=body)
    assert 400 <= r.status_code < 500 and r.get_json()["ok"] is False
    assert sum(1 for _ in services.audit.records()) == before
