"""USB Key flows of the bank app, server side: enrolment with key attestation, confirm-and-sign
of large and corporate transfers, the back office's hardware login.

The test plays the local signing agent's part with an in-process software token (the real
agent over pcscd and the page's JavaScript are tested in tests/agent and the browser tests):
what reaches the server is exactly what the agent would relay.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from wiring import DEMO_CUSTOMERS

from ebank_auth.crypto import sm2
from ebank_auth.errors import ConfirmationRejected
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove, ReadingUser
from ebank_auth.usbkey.protocol import ContainerUsage
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

PIN = "314159"
NEW_PASSWORD = "Harbour7Lantern"  # as conftest.NEW_PASSWORD
Browser = Any  # conftest.Browser (conftest modules are not importable by name)
TX_RE = re.compile(r"data-tx=\"([^\"]+)\"")
BINDING_RE = re.compile(r'data-binding="([0-9a-f]+)"')
CHALLENGE_RE = re.compile(r'data-challenge="([0-9a-f]{64})"')


def unescape(s: str) -> str:
    return s.replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&")


class Agent:
    """What the local agent does for the page, over an in-process software token."""

    def __init__(self, token: SoftToken) -> None:
        self.token = token
        trust = TrustConfig((token.manufacturer.root,), token.manufacturer.allowlist)
        self.session = TokenSession.open(InProcessConnection(token), trust)
        self.session.verify_pin(PIN)

    def enrol(self, usage: ContainerUsage = ContainerUsage.TRANSACTION) -> dict[str, str]:
        info = self.session.generate_key(usage=usage)
        att = self.session.attest_key()
        return {
            "serial": self.session.device_info().serial,
            "public_key": base64.b64encode(info.public_key_der).decode(),
            "attestation": att.to_pem().decode(),
        }

    def sign(self, tx_dict: dict[str, Any], binding: str) -> dict[str, str]:
        res = self.session.confirm_and_sign(Transaction.from_dict(tx_dict))
        return {
            "signature": base64.b64encode(res.signature).decode(),
            "signed": base64.b64encode(res.signed_bytes).decode(),
            "serial": res.serial,
            "binding": binding,
        }


@pytest.fixture
def token(tmp_path: Path) -> SoftToken:
    return SoftToken(tmp_path / "token", ReadingUser())


@pytest.fixture
def app(tmp_path: Path, clock: Any, token: SoftToken) -> Any:
    from app import create_app

    app = create_app(
        tmp_path / "state",
        argon2_memory_kib=1024,
        clock=clock,
        demo=True,
        software_token_state=tmp_path / "token",
    )
    app.config["TEST_CLOCK"] = clock
    return app


def enrol(b: Browser, agent: Agent) -> Any:
    b.after_sms_cooldown()  # the login's code was sent moments ago
    r = b.post("/usbkey/code", {}, form_url="/usbkey")
    assert r.status_code == 200, r.get_data(True)
    page = r.get_data(as_text=True)
    assert BINDING_RE.search(page)
    return b.client.post(
        "/usbkey/enrol",
        data={"csrf_token": b.token("/usbkey"), "code": b.last_code(), **agent.enrol()},
    )


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


def sign_page(r: Any) -> tuple[dict[str, Any], str]:
    import json

    page = r.get_data(as_text=True)
    m, bm = TX_RE.search(page), BINDING_RE.search(page)
    assert m and bm, page
    return json.loads(unescape(m.group(1))), bm.group(1)


def balance(b: Browser) -> Decimal:
    return b.services.account(b.demo["account"]).balance


def test_enrolment_checks_the_attestation_and_binds_serial_certificate_customer(
    customer: Browser, token: SoftToken
) -> None:
    b = customer
    b.login()
    agent = Agent(token)
    r = enrol(b, agent)
    assert r.status_code == 200, r.get_data(True)
    assert "usbkey-enrolled" in r.get_data(as_text=True)
    rec = b.services.usbkey_of(b.demo["username"])
    assert rec is not None and rec["serial"] == agent.session.device_info().serial
    cred = b.services.credentials.by_serial("usbkey", rec["serial"])
    assert cred is not None and cred.customer == b.demo["username"]


def test_a_login_key_cannot_be_enrolled_as_transaction_key(
    customer: Browser, token: SoftToken
) -> None:
    b = customer
    b.login()
    agent = Agent(token)
    b.after_sms_cooldown()
    b.post("/usbkey/code", {}, form_url="/usbkey")
    fields = agent.enrol(usage=ContainerUsage.LOGIN)
    r = b.client.post(
        "/usbkey/enrol",
        data={"csrf_token": b.token("/usbkey"), "code": b.last_code(), **fields},
    )
    assert r.status_code == 400
    assert b.services.usbkey_of(b.demo["username"]) is None


def test_a_public_key_other_than_the_attested_one_is_refused(
    customer: Browser, token: SoftToken
) -> None:
    b = customer
    b.login()
    agent = Agent(token)
    b.after_sms_cooldown()
    b.post("/usbkey/code", {}, form_url="/usbkey")
    fields = agent.enrol()
    fields["public_key"] = base64.b64encode(
        sm2.generate_private_key().public_key().to_der()
    ).decode()
    r = b.client.post(
        "/usbkey/enrol",
        data={"csrf_token": b.token("/usbkey"), "code": b.last_code(), **fields},
    )
    assert r.status_code == 400
    assert b.services.usbkey_of(b.demo["username"]) is None


def test_large_transfer_confirmed_on_the_token_is_booked_once(
    customer: Browser, token: SoftToken
) -> None:
    b = customer
    b.login()
    agent = Agent(token)
    assert enrol(b, agent).status_code == 200
    before = balance(b)
    r = start_transfer(b, "50000.00")
    assert r.status_code == 200 and "usbkey-panel" in r.get_data(as_text=True)
    tx, binding = sign_page(r)
    result = agent.sign(tx, binding)
    # what the token showed is what the server recorded
    assert token.display.shown[-1] == Transaction.from_dict(tx).display_text("zh")
    form = {"tx_id": tx["tx_id"], **result}
    r = b.post("/transfer/sign", form, form_url="/accounts")
    assert r.status_code == 200, r.get_data(True)
    assert balance(b) == before - Decimal("50000.00")
    again = b.post("/transfer/sign", form, form_url="/accounts")  # replayed submission
    assert again.status_code in (400, 409)
    assert balance(b) == before - Decimal("50000.00")


def test_signature_over_other_bytes_or_from_another_token_is_refused(
    customer: Browser, token: SoftToken, tmp_path: Path
) -> None:
    b = customer
    b.login()
    agent = Agent(token)
    assert enrol(b, agent).status_code == 200
    before = balance(b)
    tx, binding = sign_page(start_transfer(b, "50500.00"))
    # 1. the agent (or malware) has the token sign a different payee
    forged = dict(tx, payee_account="6222029999999999999")
    res = agent.sign(forged, binding)
    r = b.post("/transfer/sign", {"tx_id": tx["tx_id"], **res}, form_url="/accounts")
    assert r.status_code == 400
    # 2. a different (genuine) token signs exactly the recorded transfer
    other = Agent(SoftToken(tmp_path / "other", AutoApprove()))
    other.session.generate_key()
    res = other.sign(tx, binding)
    r = b.post("/transfer/sign", {"tx_id": tx["tx_id"], **res}, form_url="/accounts")
    assert r.status_code == 400
    # 3. the right signature relayed by another page session's pairing
    res = agent.sign(tx, "0" * 32)
    r = b.post("/transfer/sign", {"tx_id": tx["tx_id"], **res}, form_url="/accounts")
    assert r.status_code == 400
    assert balance(b) == before


def test_rejected_on_the_token_nothing_is_signed_or_booked(
    customer: Browser, token: SoftToken
) -> None:
    b = customer
    b.login()
    agent = Agent(token)
    assert enrol(b, agent).status_code == 200
    before = balance(b)
    tx, binding = sign_page(start_transfer(b, "50100.00", memo="REJECT"))
    with pytest.raises(ConfirmationRejected):
        agent.sign(tx, binding)
    r = b.post(
        "/transfer/cancel", {"tx_id": tx["tx_id"], "reason": "rejected"}, form_url="/accounts"
    )
    assert r.status_code == 200 and 'id="cancelled"' in r.get_data(as_text=True)
    assert balance(b) == before
    events = [rec["event"] for rec in b.services.audit.records()]
    assert "transfer_cancelled" in events


def test_large_transfer_without_a_bound_key_is_refused(customer: Browser) -> None:
    b = customer
    b.login()
    before = balance(b)
    r = start_transfer(b, "50000.00")
    assert r.status_code == 403 and "USB Key" in r.get_data(as_text=True)
    assert balance(b) == before


def test_corporate_funds_need_the_usb_key_even_for_small_amounts(
    browser: Browser, token: SoftToken
) -> None:
    corp = next(c for c in DEMO_CUSTOMERS if c.get("type") == "corporate")
    b = browser
    b.demo = corp
    b.services.change_password(corp["username"], corp["password"], NEW_PASSWORD)
    b.login(corp["username"])
    sent = len(b.services.outbox.messages())
    r = start_transfer(b, "100.00")
    assert r.status_code == 403  # no SMS code can stand in for the hardware certificate
    assert len(b.services.outbox.messages()) == sent
    agent = Agent(token)
    assert enrol(b, agent).status_code == 200
    r = start_transfer(b, "100.00")
    tx, binding = sign_page(r)
    r = b.post(
        "/transfer/sign", {"tx_id": tx["tx_id"], **agent.sign(tx, binding)}, form_url="/accounts"
    )
    assert r.status_code == 200, r.get_data(True)


def test_very_large_transfer_needs_the_signature_and_an_sms_code(
    browser: Browser, token: SoftToken
) -> None:
    corp = next(c for c in DEMO_CUSTOMERS if c.get("type") == "corporate")
    b = browser
    b.demo = corp
    b.services.change_password(corp["username"], corp["password"], NEW_PASSWORD)
    b.login(corp["username"])
    agent = Agent(token)
    assert enrol(b, agent).status_code == 200
    before = balance(b)
    b.after_sms_cooldown()
    tx, binding = sign_page(start_transfer(b, "1200000.00"))
    r = b.post(
        "/transfer/sign", {"tx_id": tx["tx_id"], **agent.sign(tx, binding)}, form_url="/accounts"
    )
    assert r.status_code == 200 and 'name="code"' in r.get_data(as_text=True)
    assert balance(b) == before  # not yet: the second channel's code comes first
    r = b.post(
        "/transfer/confirm", {"tx_id": tx["tx_id"], "code": b.last_code()}, form_url="/accounts"
    )
    assert r.status_code == 200, r.get_data(True)
    assert balance(b) == before - Decimal("1200000.00")
